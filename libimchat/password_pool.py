"""Argon2 on threads of its own, so that logins and signups never stall the chat.

A password check costs ~16 ms of CPU at the ``owasp`` profile. Done by the
server's loop, every login stopped every conversation for that long, and a
burst of a hundred logins for over a second. The loop now hands that work to
a :class:`PasswordPool`: argon2-cffi releases the GIL while it hashes, so the
work runs beside the loop, on the other core.

A request that needs the work (:meth:`Directory.password_work`) waits in the
pool, and so does every later request from the same peer, so that a client
that sends ``Login`` and then ``ListUsers`` without waiting still has its
requests answered in order. When the work is done, the pool keeps its answer
in :class:`Passwords` and gives the request back to the loop, followed by
those that waited behind it; the directory then handles the request as
always, and its call to ``verify`` or ``hash`` takes the answer kept for it.

Both queues are bounded (:data:`MAX_JOBS`, :data:`HELD_PER_PEER`): past
them a request is handed to the loop at once, without work. The loop never
works a password out itself (``Passwords(worked_ahead=True)``): a login or
signup that comes without its answer is refused with ``rate_limited`` and a
``retry_after``. Before, the loop did that work, and a flood of logins from
many connections stopped every conversation for ~16 ms a login.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .directory import PasswordWork
from .passwords import Passwords

log = logging.getLogger(__name__)

# argon2 at the owasp profile hashes on one thread (and keeps its 19 MiB per thread)
WORKERS = max(1, min(os.cpu_count() or 1, 4))
# at most this much work under way (~0.5 s of it at owasp on 2 cores): beyond, a login or
# signup is refused with rate_limited (see passwords.py), so that the wait stays short
MAX_JOBS = 64
# requests a peer may send behind its login before the login is answered; later ones are
# not held (they are answered at once: ``not_logged_in``, or ``rate_limited`` for another
# login): memory stays bounded
HELD_PER_PEER = 256
Request = tuple[bytes, list[bytes]]  # (peer, frames), as received from the ROUTER socket
WorkFor = Callable[[bytes, list[bytes], float], PasswordWork | None]


@dataclass
class _Job:
    peer: bytes
    frames: list[bytes]
    work: PasswordWork
    answer: str | tuple[bool, str | None] | None = None  # None: failed, the request is refused


class PasswordPool:
    """Does requests' password work on worker threads; poll :meth:`fileno` for results."""

    def __init__(self, passwords: Passwords, workers: int = WORKERS) -> None:
        self._passwords = passwords
        self._workers = ThreadPoolExecutor(workers, thread_name_prefix="libimchat-password")
        self._done: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._held: dict[bytes, list[list[bytes]]] = {}  # peers with work under way
        self._jobs = 0  # submitted and not yet released
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)

    def fileno(self) -> int:
        """Readable when some work is done: call :meth:`release` then."""
        return self._wake_reader.fileno()

    def admit(self, batch: Iterable[Request], work_for: WorkFor, now: float) -> list[Request]:
        """The requests of ``batch`` the loop may handle now; the others wait here.

        Args:
            batch: requests in the order they came.
            work_for: the password work a request needs (``Directory.password_work``).
            now: the current time (seconds since the epoch), for ``work_for``.
        """
        passing: list[Request] = []
        for peer, frames in batch:
            held = self._held.get(peer)
            if held is not None and len(held) < HELD_PER_PEER:
                held.append(frames)
                continue
            busy = held is not None or self._jobs >= MAX_JOBS
            work = work_for(peer, frames, now) if not busy and _may_need_work(frames) else None
            if work is None:
                passing.append((peer, frames))
                continue
            self._held[peer] = []
            self._jobs += 1
            self._workers.submit(self._do, _Job(peer, frames, work))
        return passing

    def release(self, work_for: WorkFor, now: float) -> list[Request]:
        """The requests whose work is done, each followed by those its peer sent after it."""
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_reader.recv(4096):
                pass
        ready: list[Request] = []
        while True:
            try:
                job = self._done.get_nowait()
            except queue.Empty:
                return ready
            self._jobs -= 1
            if isinstance(job.answer, str):
                self._passwords.keep_hash(job.work.password, job.answer)
            elif job.answer is not None:
                self._passwords.keep_verdict(job.work.stored_hash, job.work.password, job.answer)
            ready.append((job.peer, job.frames))
            later = [(job.peer, frames) for frames in self._held.pop(job.peer, [])]
            ready += self.admit(later, work_for, now)  # one of them may need work in turn

    def close(self) -> None:
        """Stop; requests still waiting here are never answered (clients resend them)."""
        self._workers.shutdown(wait=True, cancel_futures=True)
        self._wake_reader.close()
        self._wake_writer.close()

    def _do(self, job: _Job) -> None:  # on a worker thread
        try:
            if job.work.signup:
                job.answer = self._passwords.work_out_hash(job.work.password)
            else:
                job.answer = self._passwords.work_out_verify(
                    job.work.stored_hash, job.work.password
                )
        except Exception:
            log.exception("password work failed; its request will be refused as busy")
        self._done.put(job)
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")


def _may_need_work(frames: list[bytes]) -> bool:
    """Whether a request may be a Login or Signup: their type names are in their bytes
    (MessagePack strings are UTF-8 as is), so the rest skip a decode."""
    body = frames[-1]
    return b"Login" in body or b"Signup" in body
