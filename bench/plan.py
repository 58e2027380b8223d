"""What one run of the suite measures: sizes, durations and where temporary files go.

``--quick`` keeps the whole run under two minutes (the CI mode, to keep the
suite from rotting); the full run measures every size the issue lists.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .measure import CpuWindow, wait_until


@dataclass
class Plan:
    quick: bool
    peers: bool
    tmp: Path
    warmup: float = 1.0
    measure: float = 5.0
    load_processes: int = 2
    profile: Path | None = None  # where py-spy's recordings of our server go (--profile)
    results: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, *, quick: bool, peers: bool, tmp: Path) -> Plan:
        if quick:
            return cls(quick=True, peers=peers, tmp=tmp, warmup=0.5, measure=2.0)
        return cls(quick=False, peers=peers, tmp=tmp)

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def fresh_dir(self, name: str) -> Path:
        """A new empty folder under the run's temporary dir."""
        path = self.tmp / f"{name}-{time.monotonic_ns()}"
        path.mkdir(parents=True)
        return path

    def note(self, text: str) -> None:
        """Something the reader of the report must know (a side that could not run...)."""
        print(f"  note: {text}", flush=True)
        self.notes.append(text)


@dataclass
class Window:
    """A measured run: load starts at ``start``, is counted in [t0, t1], stops at ``end``."""

    start: float
    t0: float
    t1: float
    end: float

    @classmethod
    def after(cls, plan: Plan, lead: float = 0.3) -> Window:
        start = time.monotonic() + lead
        t0 = start + plan.warmup
        t1 = t0 + plan.measure
        return cls(start, t0, t1, t1 + 0.2)

    @property
    def length(self) -> float:
        return self.t1 - self.t0

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.start, self.t0, self.t1, self.end

    def watch(self, groups: dict[str, list[int]]) -> dict[str, float]:
        """Wait through the counted part of the window, returning the CPU each group used in it."""
        cpu = CpuWindow(groups)
        wait_until(self.t0)
        cpu.start()
        wait_until(self.t1)
        return cpu.stop()


CORES = os.cpu_count() or 1
