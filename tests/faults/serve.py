"""A test server in a process of its own, so that a test can ``kill -9`` it.

``python -m tests.faults.serve DATA_DIR PORT [OPEN_FILES]`` serves DATA_DIR on
PORT (and PORT + 1 for publications), its open-files limit lowered to
OPEN_FILES if given, configured like every test server
(:func:`tests.helpers.start_server`: quick heartbeats, cheap password hashing,
generous limits), prints its URL on one line, and serves until killed.
"""

from __future__ import annotations

import resource
import signal
import sys
from pathlib import Path

from tests.helpers import start_server


def main(data_dir: str, port: str, open_files: str | None = None) -> None:
    if open_files is not None:  # before the server reads it
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(open_files), hard))
    server = start_server(Path(data_dir), port=int(port))
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
