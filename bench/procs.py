"""Processes of the suite: a group of load processes, started, told and collected, always reaped.

Every process is started with the ``spawn`` method (no inherited ZeroMQ
context or sockets) and talks to the orchestrator over a pipe. A load process
runs ``target(conn, spec)``: it sets itself up, sends ``("ready", info)``,
then follows the orchestrator's messages; what each scenario sends is its own
business. Whatever happens, :meth:`LoadGroup.close` ends the processes
(politely, then by SIGTERM, then SIGKILL), so no run leaves one behind.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import multiprocessing.connection
import time
import traceback
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

SPAWN = multiprocessing.get_context("spawn")


class BenchError(RuntimeError):
    """A scenario could not be measured (a process failed or a deadline passed)."""


class LoadGroup:
    """Load processes running one target, one spec each.

    Args:
        target: a module-level function ``target(conn, spec)``.
        specs: one spec (picklable) per process.
        name: shown in errors.
    """

    def __init__(self, target: Callable[..., None], specs: Sequence[Any], name: str) -> None:
        self.name = name
        self.conns: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        for index, spec in enumerate(specs):
            mine, theirs = SPAWN.Pipe()
            proc = SPAWN.Process(
                target=target, args=(theirs, spec), name=f"bench-{name}-{index}", daemon=True
            )
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def send_all(self, message: Any) -> None:
        for conn in self.conns:
            conn.send(message)

    def gather(self, timeout: float, expect: str | None = None) -> list[Any]:
        """One message from each process, in process order.

        Raises:
            BenchError: a process died, reported an error, or was silent for ``timeout``.
        """
        deadline = time.monotonic() + timeout
        results: list[Any] = [None] * len(self.conns)
        waiting = dict(enumerate(self.conns))
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name}: {len(waiting)} load process(es) silent")
            for conn in multiprocessing.connection.wait(list(waiting.values()), left):
                index = next(i for i, c in waiting.items() if c is conn)
                try:
                    message = conn.recv()
                except EOFError:
                    raise BenchError(f"{self.name}: load process {index} died") from None
                if isinstance(message, tuple) and message and message[0] == "error":
                    raise BenchError(f"{self.name}: load process {index} failed:\n{message[1]}")
                if expect is not None and not (
                    isinstance(message, tuple) and message and message[0] == expect
                ):
                    raise BenchError(f"{self.name}: expected {expect!r}, got {message!r:.200}")
                results[index] = message
                del waiting[index]
        return results

    def close(self, timeout: float = 5.0) -> None:
        for conn in self.conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("stop",))
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(max(deadline - time.monotonic(), 0.1))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        for conn in self.conns:
            conn.close()

    def __enter__(self) -> LoadGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def report_errors(target: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Wrap a load process's body so that a crash reaches the orchestrator as ``("error", tb)``."""

    @functools.wraps(target)
    def run(conn: Any, spec: Any) -> None:
        try:
            target(conn, spec)
        except Exception:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("error", traceback.format_exc()))

    return run


def serve_orders(conn: Any, run: Callable[..., Any]) -> None:
    """Say ready, then answer each ``("run", *args)`` order with ``("done", run(*args))``
    until ``("stop",)``: the loop every load process shares."""
    conn.send(("ready", None))
    while True:
        order = conn.recv()
        if order[0] == "stop":
            return
        conn.send(("done", run(*order[1:])))


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Deal items round-robin into ``parts`` lists (item i goes to list i % parts)."""
    return [list(items[i::parts]) for i in range(parts)]
