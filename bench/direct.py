"""Scenario 1: direct messages between N users, at peak (closed loop) and at half of it.

Users are dealt round-robin to the load processes and user i writes to user
i+1, so a message always crosses from one load process to another. At peak
every user keeps ``window`` messages unacknowledged (our ack is the durable
``Sent``; the relay's is its empty frame; IRC's is the PONG that follows each
PRIVMSG); we count what recipients receive in the measured window and the
latency from the send time inside the body to the recipient's read. Then the
same users send at a fixed rate of half that side's own peak, for latency
under normal load.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from . import irc
from .measure import percentiles, wait_until
from .plan import Plan, Window
from .procs import LoadGroup, report_errors, serve_orders, split
from .profile import Profiler
from .ready import ReadySockets
from .report import record
from .seed import username
from .servers import launch
from .wire import ACK, FAILURE, MESSAGE, WIRES, log_in_all, sent_at, stamped_body

RATE_CAP = 64  # at a fixed rate, a user with this many unacked messages skips its turn


@report_errors
def load(conn: Any, spec: dict[str, Any]) -> None:
    """A load process: its share of the users, then runs as the orchestrator orders."""
    wire = WIRES[spec["wire"]]()
    ctx: zmq.Context[Any] = zmq.Context()
    sims = [wire.open(ctx, spec["url"], i) for i in spec["users"]]
    try:
        log_in_all(wire, sims, timeout=60.0)
        serve_orders(conn, lambda *order: _run(wire, sims, spec["total"], *order))
    finally:
        for sim in sims:
            sim.dealer.close(0)
        ctx.term()


def _run(
    wire: Any,
    sims: list[Any],
    total: int,
    window: int,
    rate: float,
    times: tuple[float, float, float, float],
) -> dict[str, Any]:
    start, t0, t1, end = times
    targets = {sim.dealer: sim for sim in sims}
    peer = {sim.index: username((sim.index + 1) % total) for sim in sims}
    ready = ReadySockets()
    for sim in sims:
        ready.add(sim.dealer)
    latencies: list[float] = []
    delivered = failures = sent = skipped = 0
    failure_codes: set[str] = set()

    def send(sim: Any) -> None:
        nonlocal sent
        sim.dealer.send_multipart(wire.direct(sim, peer[sim.index], stamped_body()))
        ready.sent(sim.dealer)
        sim.inflight += 1
        sent += 1

    while time.monotonic() < start:
        time.sleep(0.001)
    if not rate:
        for sim in sims:
            for _ in range(window):
                send(sim)
    turn = 0
    now = time.monotonic()
    while now < end or (any(s.inflight for s in sims) and now < end + 2.0):
        for sock in ready.wait(0.001):
            sim = targets[sock]
            while True:  # to the end: ReadySockets signals a socket once
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                kind, detail = wire.read(frames)
                if kind == ACK:
                    sim.inflight -= 1
                    if not rate and time.monotonic() < end:
                        send(sim)
                elif kind == MESSAGE:
                    now = time.monotonic()
                    if t0 <= now < t1:
                        delivered += 1
                        latencies.append(now - sent_at(detail))
                elif kind == FAILURE:
                    sim.inflight -= 1
                    failures += 1
                    failure_codes.add(detail)
        now = time.monotonic()
        if rate and now < end:
            due = int((now - start) * rate) - sent - skipped
            for _ in range(max(due, 0)):
                sim = sims[turn % len(sims)]
                turn += 1
                if sim.inflight < RATE_CAP:
                    send(sim)
                else:
                    skipped += 1
    ready.close()
    return {
        "delivered": delivered,
        "latencies": latencies,
        "sent": sent,
        "skipped": skipped,
        "failures": failures,
        "failure_codes": sorted(failure_codes),
    }


def _side(plan: Plan, side: str, clients: int, window: int) -> dict[str, Any]:
    """Peak and half-peak runs of one side; returns their figures."""
    server = None
    if side == "irc":
        server = irc.Ircd().start()
        target, url = irc.direct_load, server.address
    else:
        server = launch(
            side, plan.fresh_dir(f"direct-{side}"), users=clients, heartbeat_interval=60.0
        )
        target, url = load, server.url
    specs = [
        {"wire": side, "url": url, "users": users, "total": clients}
        for users in split(range(clients), plan.load_processes)
    ]
    try:
        with LoadGroup(target, specs, f"direct-{side}") as group:
            group.gather(120.0, expect="ready")
            figures = {}
            peak_rate = 0.0
            for label in ("peak", "half"):
                window_times = Window.after(plan)
                rate = peak_rate / 2 / plan.load_processes if label == "half" else 0.0
                group.send_all(("run", window, rate, window_times.as_tuple()))
                profiler = None
                if plan.profile and side == "ours" and label == "peak":
                    wait_until(window_times.t0)
                    profiler = Profiler(server.pid, plan.measure, plan.profile, f"direct-{clients}")
                cpu = window_times.watch({"server": [server.pid], "load": group.pids})
                done = [d[1] for d in group.gather(plan.measure + 30.0, expect="done")]
                if profiler is not None:
                    print(profiler.finish(), flush=True)
                delivered = sum(d["delivered"] for d in done)
                throughput = delivered / window_times.length
                if label == "peak":
                    peak_rate = throughput
                lat = percentiles(x for d in done for x in d["latencies"])
                figures[label] = {
                    "msgs_per_s": round(throughput, 1),
                    **lat,
                    "cpu": cpu,
                    "failures": sum(d["failures"] for d in done),
                    "failure_codes": sorted({c for d in done for c in d["failure_codes"]}),
                    "skipped_sends": sum(d["skipped"] for d in done),
                }
                print(
                    f"    {side:6} {label:4}: {throughput:9.0f} msg/s  p50 {lat['p50_ms']} ms"
                    f"  p99 {lat['p99_ms']} ms  cpu {cpu}",
                    flush=True,
                )
            return figures
    finally:
        server.stop()


def run(plan: Plan) -> None:
    sides = ["ours", "relay", *(["irc"] if plan.peers else [])]
    for clients in plan.pick([100], [100, 1000]):
        window = max(1, 400 // clients)
        print(f"  direct messages, {clients} users, window {window}", flush=True)
        figures = {}
        for side in sides:
            try:
                figures[side] = _side(plan, side, clients, window)
            except Exception as exc:
                if side != "irc":
                    raise
                plan.note(f"IRC direct messages ({clients} users) not measured: {exc}")
        params = {"clients": clients, "window": window, "load_processes": plan.load_processes}
        record(
            plan,
            "direct",
            {**params, "load": "peak (closed loop)"},
            {side: f["peak"] for side, f in figures.items()},
            metrics={"msgs_per_s": "msg/s", "p50_ms": "ms", "p99_ms": "ms"},
        )
        record(
            plan,
            "direct",
            {**params, "load": "50% of each side's peak"},
            {side: f["half"] for side, f in figures.items()},
            metrics={"msgs_per_s": "msg/s", "p50_ms": "ms", "p99_ms": "ms"},
        )
