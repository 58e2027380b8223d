"""``--profile DIR``: py-spy on our server while it is under the peak direct-message load.

py-spy (``pip install py-spy``) samples the server process from outside, so
the server runs unmodified. We keep its raw collapsed stacks and a flame graph,
and print the functions with the most samples: by self time (where the CPU
is) and inclusive (which call paths cost most).
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

RATE = 250  # samples a second


class Profiler:
    """A py-spy recording of one process for ``seconds``, started now."""

    def __init__(self, pid: int, seconds: float, out: Path, name: str) -> None:
        self.out = out
        self.name = name
        self.raw = out / f"{name}.txt"
        out.mkdir(parents=True, exist_ok=True)
        beside = Path(sys.executable).with_name("py-spy")  # a venv's, when not on PATH
        binary = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.proc = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(self.raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def finish(self, top: int = 15) -> str:
        """Wait for the recording; returns a text summary (also written beside the stacks)."""
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.raw.exists():
            return f"py-spy recorded nothing: {err.decode(errors='replace').strip()[-300:]}"
        summary = summarize(self.raw, top)
        (self.out / f"{self.name}-top.txt").write_text(summary)
        return summary


def summarize(raw: Path, top: int = 15) -> str:
    """The top functions of py-spy's collapsed stacks, by self and by inclusive samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_short(frame) for frame in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples of the server's busy threads"]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"\ntop {top} by {title} time:")
        for frame, samples in counter.most_common(top):
            lines.append(f"  {100 * samples / total:5.1f}%  {frame}")
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    """``function (path/to/file.py:line)`` -> ``function (file.py)``: one entry per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})" if where else name
