"""How many connections the server can still take: its room under the open-files limit.

Each connection costs the server one file descriptor, and a client holds two
(its DEALER and its SUB). When a process runs out of descriptors, libzmq's
listener cannot accept the next connection, and it tries again at once, for
ever: the server's I/O thread spins a whole core while the connection waits
in the kernel's queue, and the client hangs. So the server refuses
connections itself, cleanly, before the limit (see zap.py), and refuses
sessions past what it can hold (``server_full``):

- a new connection to the ROUTER is refused once no more than
  :attr:`Capacity.reserve` descriptors are left (its own counted);
- a SUB of a live session, once no more than half of that are left: so that
  clients already in keep their SUB when strangers' connections crowd in;
- a Login or Resume, once :attr:`Capacity.sessions` sessions live: each needs two
  descriptors and there is room for that many pairs.

The reserve also holds the server's own files and the connections that libzmq
accepted but whose handshake has not reached the gate yet. More of those at
once than the reserve still reach the limit for a moment, until the gate's
refusals free their descriptors; and a peer that opens TCP connections and
never speaks ZMTP holds each until libzmq's handshake timeout. A cap of
connections per address is a firewall's job, not something a process can do.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no open-files limit of this kind
    resource = None  # type: ignore[assignment]

MIN_RESERVE = 64
RECOUNT = 0.1  # seconds a slow count (a directory listing) is used for
MOST_OPEN_FILES = 1 << 20  # what raise_open_files_limit() goes up to at most
_FDS = "/proc/self/fd"


class Capacity:
    """The open-files budget of this process.

    Args:
        limit: the most descriptors the process may hold; by default (``None``)
            its soft ``RLIMIT_NOFILE``. An unlimited soft limit checks nothing.
        reserve: descriptors kept free below ``limit``; by default 2.5% of it,
            at least :data:`MIN_RESERVE` (500 of 20,000).
    """

    def __init__(self, limit: int | None = None, reserve: int | None = None) -> None:
        self.limit = limit if limit is not None else _soft_limit()
        self.reserve = reserve if reserve is not None else _default_reserve(self.limit)
        if self.limit is not None and self.limit <= 2 * self.reserve:
            raise ValueError(
                f"an open-files limit of {self.limit} leaves no room for connections;"
                " raise it (ulimit -n)"
            )
        self._quick = _quick_count_holds()
        self._count, self._counted_at = 0, -RECOUNT

    @property
    def sessions(self) -> int | None:
        """The sessions the server can hold, a DEALER and a SUB each (``None``: no bound)."""
        if self.limit is None:
            return None
        return (self.limit - self.reserve) // 2

    def takes_clients(self) -> bool:
        """Whether a new connection to the ROUTER may be let in now."""
        return self._left() > self.reserve

    def takes_subscribers(self) -> bool:
        """Whether a live session's SUB may be let in now."""
        return self._left() > self.reserve // 2

    def open_files(self) -> int:
        """The descriptors this process holds now.

        On Linux 6.2 and later the size of ``/proc/self/fd`` is that count
        (a few microseconds, whatever the count); elsewhere the directory is
        listed (~13 ms at 18,000 descriptors).
        """
        quick = _quick_count() if self._quick else None
        return quick if quick is not None else _listed_count()

    def _left(self) -> int:
        """Descriptors left. A slow count is taken again only every :data:`RECOUNT`
        seconds, in a reconnection storm too: meanwhile each look counts one more,
        as if every connection asked about was let in."""
        if self.limit is None:
            return 1 << 62
        now = time.monotonic()
        if self._quick or now - self._counted_at >= RECOUNT:
            self._count, self._counted_at = self.open_files(), now
        else:
            self._count += 1
        return self.limit - self._count


def raise_open_files_limit() -> int | None:
    """Raise this process's soft open-files limit to its hard one; returns the limit.

    Many systems start processes at 1,024 (so that old ``select()`` code never
    sees a larger descriptor) with a hard limit far above: room for ~480
    clients. ``imchat serve`` raises it, as a server of its own process may;
    a program that embeds the server decides for itself. An unlimited hard
    limit (macOS) is taken as the kernel's own; none is taken past
    :data:`MOST_OPEN_FILES` (containers may allow a billion, and a reserve of
    2.5% of that would never be reached).
    """
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _kernel_open_files_limit() if hard == resource.RLIM_INFINITY else hard
    wanted = min(wanted, MOST_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(OSError, ValueError):  # the kernel may allow less
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return _soft_limit()


def _kernel_open_files_limit() -> int:
    """The most descriptors a process may hold: Linux's ``fs.nr_open``, else macOS's
    ``OPEN_MAX`` (10,240)."""
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 10_240


def _quick_count() -> int | None:
    try:
        return os.stat(_FDS).st_size or None  # 0 before Linux 6.2
    except OSError:
        return None


def _listed_count() -> int:
    for listing in (_FDS, "/dev/fd"):
        try:
            return len(os.listdir(listing))
        except OSError:
            continue
    return 0


def _quick_count_holds() -> bool:
    """Whether the quick count is there and agrees with a listing (a sandbox may emulate
    ``/proc`` and give the directory another size)."""
    quick = _quick_count()
    return quick is not None and abs(quick - _listed_count()) <= 2


def _soft_limit() -> int | None:
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def _default_reserve(limit: int | None) -> int:
    return max(MIN_RESERVE, (limit or 0) // 40)
