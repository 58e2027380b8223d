"""What the suite measures besides counting messages: CPU, memory and latency percentiles.

CPU is read from /proc by process id, so one reader covers every side alike
(our server, the relay, the IRC daemon, each load process), whoever started it.
CPU figures are in cores: 1.0 is one core busy for the whole window.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds; 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def rss_bytes(pid: int) -> int:
    """Resident memory of a process in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (FileNotFoundError, ProcessLookupError):
        return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


@dataclass
class CpuWindow:
    """CPU used by groups of processes between :meth:`start` and :meth:`stop`.

    Args:
        groups: a name per side ("server", "load") and the pids it is made of.
    """

    groups: dict[str, list[int]]

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        self._machine0 = machine_busy()

    def stop(self) -> dict[str, float]:
        """Cores used per group over the window, and ``machine`` (all cores busy = cores)."""
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        used = {
            name: round(sum(cpu_seconds(pid) - self._cpu0[pid] for pid in pids) / elapsed, 3)
            for name, pids in self.groups.items()
        }
        busy0, total0 = self._machine0
        busy1, total1 = machine_busy()
        cores = os.cpu_count() or 1
        used["machine"] = round(cores * (busy1 - busy0) / max(total1 - total0, 1.0), 3)
        return used


def percentiles(samples: Sequence[float] | Iterable[float]) -> dict[str, float | None]:
    """p50, p99 and max of latency samples given in seconds, returned in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "samples": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": at(1.0), "samples": len(ordered)}


def wait_until(moment: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``moment``."""
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)
