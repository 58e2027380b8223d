"""The server's CurveZMQ keypair: made on first start, kept in the data dir.

The public half goes in ``server.key`` and the secret half in
``server.key_secret`` (mode 0600, written under that mode from the first byte),
in the ZPL certificate format of ``zmq.auth``, so ZeroMQ tools read them too.
A client on the same machine finds the public key of a server that uses the
default data dir by itself (:func:`local_server_key`).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import zmq
import zmq.auth
from zmq.utils import z85

from .errors import ChatError

PUBLIC_FILE = "server.key"
SECRET_FILE = "server.key_secret"
_CERTIFICATE = """\
#   ZeroMQ CURVE {kind} certificate of a libimchat server
#   {warning}
metadata
curve
    public-key = "{public}"
{secret_line}"""


def default_data_dir() -> Path:
    """Where ``imchat serve`` keeps its database and keys unless told otherwise."""
    return Path(platformdirs.user_data_dir("libimchat", appauthor=False))


def server_keypair(data_dir: Path) -> tuple[bytes, bytes]:
    """The server's (public, secret) Z85 keys, made and saved the first time."""
    public_file, secret_file = data_dir / PUBLIC_FILE, data_dir / SECRET_FILE
    if not secret_file.exists():
        public, secret = zmq.curve_keypair()
        _write(secret_file, "secret", public, secret)
        _write(public_file, "public", public, None)
    public, maybe_secret = zmq.auth.load_certificate(secret_file)
    if maybe_secret is None:
        raise ChatError("invalid", f"{secret_file} holds no secret key")
    os.chmod(secret_file, 0o600)  # in case someone loosened it
    return public, maybe_secret


def local_server_key(data_dir: Path | None = None) -> bytes | None:
    """The public key of the server whose data dir is ``data_dir`` (default: the default one)."""
    public_file = (data_dir or default_data_dir()) / PUBLIC_FILE
    try:
        return zmq.auth.load_certificate(public_file)[0]
    except (OSError, ValueError):
        return None


def check_key(key: str | bytes) -> bytes:
    """A Z85 public key as bytes, or ``ChatError("invalid")``."""
    raw = key.encode("ascii", "replace") if isinstance(key, str) else key
    try:
        if len(raw) == 40 and len(z85.decode(raw)) == 32:
            return raw
    except (ValueError, KeyError, TypeError):
        pass
    raise ChatError("invalid", "a server key is 40 Z85 characters (as `imchat serve` prints it)")


def _write(path: Path, kind: str, public: bytes, secret: bytes | None) -> None:
    text = _CERTIFICATE.format(
        kind=kind,
        warning="keep this file secret" if secret else "give this key to the server's clients",
        public=public.decode(),
        secret_line=f'    secret-key = "{secret.decode()}"\n' if secret else "",
    )
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
