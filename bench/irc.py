"""The peer: InspIRCd (Debian's package), driven with the IRC equivalent of our load.

``--peers`` runs a real C chat server beside ours: InspIRCd on 127.0.0.1 only,
from a configuration written here with its flood protection out of the way
(no fake lag, huge command rate and queues, 20,000 connections from one
address). Its load processes have the same shape as ours (the same users dealt
to the same number of processes, batched reads, the send time inside the
body), over plain non-blocking TCP sockets:

- direct messages: ``PRIVMSG <nick> :<body>`` then ``PING :<n>``; the server's
  PONG is the ack (it answers in order, after it has forwarded the message);
- room fan-out: every member joins ``#bench``; one posts ``PRIVMSG #bench``
  and is paced by a second member in its process (IRC does not echo to the sender).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .procs import BenchError, report_errors, serve_orders
from .seed import username
from .wire import sent_at, stamped_body

HOST = "127.0.0.1"
CHANNEL = "#bench"
SERVER_NAME = "bench.irc"
READ = 1 << 16

CONFIG = """\
<server name="{name}" description="libimchat bench peer" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="{host}" port="{port}" type="clients">
<connect name="bench" allow="*" maxchans="20" timeout="120" pingfreq="{pingfreq}"
         hardsendq="64M" softsendq="16M" recvq="16M" threshold="100000000"
         commandrate="1000000000" fakelag="no" localmax="20000" globalmax="20000"
         resolvehostnames="no" useident="no" limit="20000">
<performance netbuffersize="65536" somaxconn="4096" softlimit="19500" clonesonconnect="no">
<channels users="20" opers="20">
<options>
<path configdir="{dir}" datadir="{dir}" logdir="{dir}" moduledir="/usr/lib/inspircd/modules">
<pid file="{dir}/inspircd.pid">
<dns server="127.0.0.1" timeout="1">
"""


def _binary() -> str:
    """The inspircd executable, installed from Debian's packages when missing.

    Raises:
        BenchError: it is not installed and could not be.
    """
    found = shutil.which("inspircd") or shutil.which("inspircd", path="/usr/sbin:/usr/bin")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError("inspircd is not installed (Debian: apt-get install -y inspircd)")
    print("  installing inspircd (apt-get install -y inspircd)...", flush=True)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", "inspircd"],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
    )
    found = shutil.which("inspircd", path="/usr/sbin:/usr/bin")
    if done.returncode != 0 or not found:
        raise BenchError(f"apt-get install inspircd failed: {done.stderr.strip()[-300:]}")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Ircd:
    """InspIRCd in the foreground on a free port of 127.0.0.1, in a temporary folder.

    Args:
        pingfreq: seconds between the server's PINGs to each client.
    """

    kind = "inspircd"

    def __init__(self, pingfreq: int = 120) -> None:
        self.pingfreq = pingfreq
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None
        self.version = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def start(self) -> Ircd:
        binary = _binary()
        if not self.version:
            shown = subprocess.run([binary, "--version"], capture_output=True, text=True)
            self.version = (shown.stdout.strip().splitlines() or ["InspIRCd"])[-1]
        self.dir = self.dir or Path(tempfile.mkdtemp(prefix="imchat-bench-ircd-"))
        self.port = self.port or _free_port()
        config = self.dir / "inspircd.conf"
        config.write_text(
            CONFIG.format(
                name=SERVER_NAME, host=HOST, port=self.port, dir=self.dir, pingfreq=self.pingfreq
            )
        )
        self.proc = subprocess.Popen(
            [binary, f"--config={config}", "--nofork", "--runasroot", "--nolog"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # our Ctrl-C is for us; we stop it ourselves
        )
        deadline = time.monotonic() + 15.0
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise BenchError(f"inspircd exited at start (code {self.proc.returncode})")
            try:
                with socket.create_connection(self.address, timeout=1.0):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BenchError("inspircd did not start listening within 15 s") from None
                time.sleep(0.1)
        return self

    def stop(self, *, keep_dir: bool = False) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
            self.proc = None
        if self.dir is not None and not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Ircd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the load side


class IrcSim:
    """One simulated IRC user: a non-blocking socket, a read buffer, its counters."""

    __slots__ = ("buf", "index", "inflight", "nick", "out", "sock")

    def __init__(self, index: int, address: tuple[str, int]) -> None:
        self.index = index
        self.nick = username(index)
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.out = b""
        self.inflight = 0

    def send(self, data: bytes) -> None:
        """Queue data and write what the socket takes now."""
        self.out += data
        self.flush()

    def flush(self) -> None:
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                return
            self.out = self.out[sent:]

    def lines(self) -> list[bytes]:
        """Complete lines received so far (reads what is there, answers PINGs)."""
        try:
            while True:
                chunk = self.sock.recv(READ)
                if not chunk:
                    raise ConnectionError(f"{self.nick}: the IRC server closed the connection")
                self.buf += chunk
                if len(chunk) < READ:
                    break
        except BlockingIOError:
            pass
        *lines, self.buf = self.buf.split(b"\r\n")
        for line in lines:
            if line.startswith(b"PING "):
                self.send(b"PONG " + line[5:] + b"\r\n")
        return lines


def register_all(sims: list[IrcSim], timeout: float, channel: str | None = None) -> None:
    """NICK/USER every sim (and JOIN ``channel``), waiting for all within ``timeout``."""
    for sim in sims:
        sim.send(f"NICK {sim.nick}\r\nUSER {sim.nick} 0 * :bench\r\n".encode())
    need = b"366" if channel else b"001"  # end of NAMES after the JOIN, or the welcome
    selector = selectors.DefaultSelector()
    for sim in sims:
        selector.register(sim.sock, selectors.EVENT_READ, sim)
    left = len(sims)
    deadline = time.monotonic() + timeout
    while left:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{left} of {len(sims)} IRC registrations unfinished")
        for key, _ in selector.select(0.2):
            sim = key.data
            for line in sim.lines():
                parts = line.split(b" ", 2)
                command = parts[1] if line.startswith(b":") and len(parts) > 1 else parts[0]
                if channel and command == b"001":
                    sim.send(f"JOIN {channel}\r\n".encode())
                elif command == need:
                    left -= 1
                elif command in (b"433", b"ERROR", b"451"):
                    raise RuntimeError(f"IRC registration of {sim.nick}: {line[:200]!r}")
    selector.close()


def drain(sims: list[IrcSim], quiet: float = 0.5) -> None:
    """Read and drop whatever arrives until nothing has for ``quiet`` seconds."""
    selector = selectors.DefaultSelector()
    for sim in sims:
        selector.register(sim.sock, selectors.EVENT_READ, sim)
    while selector.select(quiet):
        for key, _ in selector.select(0):
            key.data.lines()
    selector.close()


def _text(line: bytes) -> bytes:
    """The trailing parameter of ``:prefix COMMAND target :text``."""
    return line[line.index(b" :", 1) + 2 :]


@report_errors
def direct_load(conn: Any, spec: dict[str, Any]) -> None:
    """Direct messages over IRC: the counterpart of bench/direct.py's load."""
    sims = [IrcSim(i, spec["url"]) for i in spec["users"]]
    try:
        register_all(sims, timeout=120.0)
        drain(sims)
        serve_orders(conn, lambda *order: _direct(sims, spec["total"], *order))
    finally:
        for sim in sims:
            sim.sock.close()


def _direct(
    sims: list[IrcSim], total: int, window: int, rate: float, times: tuple[float, ...]
) -> dict[str, Any]:
    start, t0, t1, end = times
    peer = {sim.index: username((sim.index + 1) % total).encode() for sim in sims}
    selector = selectors.DefaultSelector()
    for sim in sims:
        selector.register(sim.sock, selectors.EVENT_READ, sim)
    latencies: list[float] = []
    delivered = sent = skipped = 0

    def send(sim: IrcSim) -> None:
        nonlocal sent
        sent += 1
        body = stamped_body().encode()
        sim.send(b"PRIVMSG " + peer[sim.index] + b" :" + body + b"\r\nPING :%d\r\n" % sent)
        sim.inflight += 1

    while time.monotonic() < start:
        time.sleep(0.001)
    if not rate:
        for sim in sims:
            for _ in range(window):
                send(sim)
    turn = 0
    now = time.monotonic()
    while now < end or (any(s.inflight for s in sims) and now < end + 2.0):
        for key, _ in selector.select(0.001):
            sim = key.data
            for line in sim.lines():
                if b" PONG " in line:
                    sim.inflight -= 1
                    if not rate and time.monotonic() < end:
                        send(sim)
                elif b" PRIVMSG " in line:
                    now = time.monotonic()
                    if t0 <= now < t1:
                        delivered += 1
                        latencies.append(now - sent_at(_text(line).decode()))
        for sim in sims:
            sim.flush()
        now = time.monotonic()
        if rate and now < end:
            due = int((now - start) * rate) - sent - skipped
            for _ in range(max(due, 0)):
                sim = sims[turn % len(sims)]
                turn += 1
                if sim.inflight < 64:
                    send(sim)
                else:
                    skipped += 1
    selector.close()
    return {
        "delivered": delivered,
        "latencies": latencies,
        "sent": sent,
        "skipped": skipped,
        "failures": 0,
        "failure_codes": [],
    }


@report_errors
def fanout_load(conn: Any, spec: dict[str, Any]) -> None:
    """Room fan-out over IRC: the counterpart of bench/fanout.py's load."""
    sims = [IrcSim(i, spec["address"]) for i in spec["users"]]
    try:
        register_all(sims, timeout=120.0, channel=spec["channel"])
        drain(sims)
        serve_orders(conn, lambda *order: _fanout(sims, spec["channel"], *order))
    finally:
        for sim in sims:
            sim.sock.close()


def _fanout(
    sims: list[IrcSim], channel: str, window: int, times: tuple[float, ...], probes: int = 10
) -> dict[str, Any]:
    start, t0, t1, end = times
    poster = sims[0] if sims[0].index == 0 else None
    pacer = sims[1] if poster is not None and len(sims) > 1 else None
    timed = {sim.sock for sim in sims[:probes]}
    selector = selectors.DefaultSelector()
    for sim in sims:
        selector.register(sim.sock, selectors.EVENT_READ, sim)
    latencies: list[float] = []
    deliveries = posts = pending = 0
    prefix = f"PRIVMSG {channel} :".encode()

    def post() -> None:
        nonlocal posts, pending
        assert poster is not None
        poster.send(prefix + stamped_body().encode() + b"\r\n")
        posts += 1
        pending += 1

    while time.monotonic() < start:
        time.sleep(0.001)
    if poster is not None:
        for _ in range(window):
            post()
    now = time.monotonic()
    while now < end + 0.5:
        for key, _ in selector.select(0.001):
            sim = key.data
            got = 0
            for line in sim.lines():
                if b" PRIVMSG " in line:
                    got += 1
                    if sim.sock in timed:
                        latencies.append(time.monotonic() - sent_at(_text(line).decode()))
            now = time.monotonic()
            if t0 <= now < t1:
                deliveries += got
            if sim is pacer:
                pending -= got
        if poster is not None:
            poster.flush()
        now = time.monotonic()
        while pacer is not None and pending < window and now < end:
            post()
    selector.close()
    return {"deliveries": deliveries, "latencies": latencies, "posts": posts, "failures": 0}
