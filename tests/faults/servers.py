"""Servers for the fault tests: free port pairs, and a server process that can be killed.

A server listens on ``port`` (requests) and ``port + 1`` (publications) when
started on a fixed port, so a restarted server comes back on both ports the
clients already know.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port P such that P and P + 1 are both free on ``host`` (and on 127.0.0.2, for proxies).

    Drawn below the kernel's ephemeral range: connections closed in the last
    minute hold ports of that range in TIME_WAIT, and after the benchmarks'
    reconnect scenario (tens of thousands of them) it has no two free in a row.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 10_000), low - 1)
        if all(
            _free(address, candidate)
            for address in (host, "127.0.0.2")
            for candidate in (port, port + 1)
        ):
            return port
    raise RuntimeError("no two consecutive free ports")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for outgoing connections (Linux; else 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)  # polling a condition that has no event to wait on


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class ServerProcess:
    """A test server (``python -m tests.faults.serve``) on fixed ports, in its own process.

    Args:
        data_dir: the server's data dir; it survives kills and restarts.
        port: the request port (``port + 1`` publishes); free ones by default.
        open_files: the process's open-files limit (``ulimit -n``); by default
            this process's.
    """

    def __init__(
        self, data_dir: Path, port: int | None = None, open_files: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.open_files = open_files
        self.port = port or free_port_pair()
        self.pub_port = self.port + 1
        self.url = ""
        self.kills = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def start(self) -> ServerProcess:
        """Start the server; returns once it listens."""
        command = [sys.executable, "-m", "tests.faults.serve", str(self.data_dir), str(self.port)]
        if self.open_files is not None:
            command.append(str(self.open_files))
        self._process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        url = self._process.stdout.readline().strip()
        assert url.startswith("tcp://"), f"the server process did not start (it said {url!r})"
        # the URL carries the server's key, which lives in the data dir: a restart keeps it
        assert self.url in ("", url), f"the restarted server has another URL: {url} != {self.url}"
        self.url = url
        return self

    def open_fds(self) -> int:
        """The descriptors the server's process holds now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def kill(self) -> None:
        """``kill -9``: no clean-up, no flush, sockets dropped mid-stream."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._close_pipe()
        self.kills += 1

    def stop(self) -> None:
        """A clean stop (SIGTERM), or a kill if it does not stop within 10 s."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
