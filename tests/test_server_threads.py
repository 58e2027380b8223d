"""The server process's threads: libzmq's let the loop finish its turn, the loop keeps its place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH"), reason="scheduling policies are Linux's"
)


def _policies(pid: int) -> dict[str, set[int]]:
    """Each thread name of the process, with the scheduling policies of its threads."""
    policies: dict[str, set[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        policies.setdefault(name, set()).add(os.sched_getscheduler(int(tid)))
    return policies


def test_libzmqs_threads_run_under_sched_batch_and_the_loop_does_not(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "libimchat", "serve", "--data-dir", str(tmp_path)]
    command += ["--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith(b"libimchat server at ")  # listening
        policies = _policies(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:  # never leave a server behind the test
            server.kill()
            raise
    libzmq = {name: found for name, found in policies.items() if name.startswith("ZMQbg/")}
    assert {"ZMQbg/IO/0", "ZMQbg/Reaper"} <= libzmq.keys(), policies
    assert all(found == {os.SCHED_BATCH} for found in libzmq.values()), policies
    # the loop, the checkpointer and the password threads: woken by a request, they run
    others = set().union(*(found for name, found in policies.items() if name not in libzmq))
    assert others == {os.SCHED_OTHER}, policies
