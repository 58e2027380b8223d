"""Run the benchmark suite: ``python -m bench [--quick] [--peers] [--only NAME...]``.

Each scenario runs our server and, in the same run and with the same load
shape, the raw pyzmq relay (and InspIRCd with ``--peers``), then the results go
to bench/results/latest.json, the table between the markers of docs/BENCH.md
and the plots to docs/img/bench-*.png. A quick run writes its table and plots
under bench/results/ instead, so that CI leaves the committed docs alone.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import connections, direct, fanout, full, history, login
from bench.plan import Plan
from bench.report import write_json, write_markdown, write_plots

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "direct": direct.run,
    "fanout": fanout.run,
    "connections": connections.run,
    "full": full.run,
    "history": history.run,
    "login": login.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CI mode: all in under 2 minutes")
    parser.add_argument("--peers", action="store_true", help="also measure InspIRCd (installs it)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="these scenarios")
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/BENCH.md and docs/img (default: yes for a full run, no for --quick)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record our server with py-spy under the peak direct-message load into DIR",
    )
    args = parser.parse_args(argv)
    write_docs = args.docs if args.docs is not None else not args.quick
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="imchat-bench-"))
    plan = Plan.make(quick=args.quick, peers=args.peers, tmp=tmp)
    plan.profile = args.profile
    failed = []
    try:
        for name in args.only or list(SCENARIOS):
            print(f"{name} ({time.time() - started:.0f} s)", flush=True)
            try:
                SCENARIOS[name](plan)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                failed.append(name)
                plan.note(f"scenario {name} failed: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        print("interrupted; cleaning up", flush=True)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = ROOT / "bench" / "results"
    write_json(plan, results / "latest.json", started)
    docs, images = (ROOT / "docs", ROOT / "docs" / "img") if write_docs else (results, results)
    write_markdown(plan, docs / "BENCH.md")
    plots = write_plots(plan, images)
    print(
        f"done in {time.time() - started:.0f} s: {results / 'latest.json'}, {docs / 'BENCH.md'}"
        + "".join(f", {p}" for p in plots),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
