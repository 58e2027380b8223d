"""Scenario 2: one room of M members, one of them posting; deliveries per second and latency.

Every member holds a SUB subscribed to the room (and, with our server, a
logged-in DEALER). The poster keeps ``window`` posts in flight, counted until
its own SUB receives them (the pacing that stops it outrunning the fan-out:
an ack alone says the post is stored, not that it was delivered). Members read
in batches and count; "probe" members (a few per load process) also take the
latency of every post from the send time inside its body. What PUB dropped
shows as deliveries below posts x members.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from libimchat.protocol import room_topic

from . import irc
from .measure import percentiles
from .plan import Plan, Window
from .procs import LoadGroup, report_errors, serve_orders, split
from .ready import ReadySockets
from .report import record
from .servers import launch
from .wire import FAILURE, WIRES, log_in_all, sent_at, stamped_body, subscribe

ROOM = "bench room"
PROBES = 10  # members per load process that time every post


def window(members: int) -> int:
    """Posts in flight: up to 128, and about 10,000 deliveries queued in a big room."""
    return max(8, min(128, 10_000 // members))


@report_errors
def load(conn: Any, spec: dict[str, Any]) -> None:
    """A load process: its share of the members (the poster is user 0, in process 0)."""
    wire = WIRES[spec["wire"]]()
    ctx: zmq.Context[Any] = zmq.Context()
    sims = [wire.open(ctx, spec["url"], i) for i in spec["users"]]
    try:
        log_in_all(wire, sims, timeout=60.0)
        for sim in sims:  # ours admits a subscriber once its session has started
            subscribe(ctx, sim, spec["pub_url"], [spec["topic"]])
        time.sleep(0.5)  # let the subscriptions reach the publisher (the slow joiner)
        serve_orders(conn, lambda *order: _run(wire, sims, *order))
    finally:
        for sim in sims:
            sim.dealer.close(0)
            if sim.sub is not None:
                sim.sub.close(0)
        ctx.term()


def _run(
    wire: Any, sims: list[Any], window: int, times: tuple[float, float, float, float]
) -> dict[str, Any]:
    start, t0, t1, end = times
    poster = sims[0] if sims[0].index == 0 else None
    probes = {sim.sub for sim in sims[:PROBES]}
    owner = {sim.sub: sim for sim in sims}
    ready = ReadySockets()
    for sim in sims:
        ready.add(sim.sub)
    if poster is not None:
        ready.add(poster.dealer)
    latencies: list[float] = []
    deliveries = posts = failures = 0
    pending = 0  # posts the poster has not seen come back on its own SUB

    def post() -> None:
        nonlocal pending, posts
        assert poster is not None
        poster.dealer.send_multipart(wire.room(poster, ROOM, stamped_body()))
        ready.sent(poster.dealer)
        pending += 1
        posts += 1

    while time.monotonic() < start:
        time.sleep(0.001)
    if poster is not None:
        for _ in range(window):
            post()
    now = time.monotonic()
    while now < end + 0.5:
        for sock in ready.wait(0.001):
            if poster is not None and sock is poster.dealer:
                while True:  # to the end: ReadySockets signals a socket once
                    try:
                        kind, _detail = wire.read(sock.recv_multipart(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                    if kind == FAILURE:
                        failures += 1
                        pending -= 1
                continue
            probe = sock in probes
            got = 0
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                got += 1
                if probe:
                    body = wire.read_published(frames)
                    if body is not None:
                        latencies.append(time.monotonic() - sent_at(body))
            now = time.monotonic()
            if t0 <= now < t1:
                deliveries += got
            if poster is not None and owner[sock] is poster:
                pending -= got
        now = time.monotonic()
        while poster is not None and pending < window and now < end:
            post()
    ready.close()
    return {"deliveries": deliveries, "latencies": latencies, "posts": posts, "failures": failures}


def _side(plan: Plan, side: str, members: int) -> dict[str, Any]:
    if side == "irc":
        server: Any = irc.Ircd().start()
        target: Any = irc.fanout_load
        specs = [
            {"address": server.address, "users": users, "channel": irc.CHANNEL}
            for users in split(range(members), plan.load_processes)
        ]
    else:
        server = launch(
            side,
            plan.fresh_dir(f"fanout-{side}"),
            users=members,
            room=ROOM,
            heartbeat_interval=60.0,
        )
        target = load
        specs = [
            {
                "wire": side,
                "url": server.url,
                "pub_url": f"tcp://127.0.0.1:{server.pub_port}",
                "topic": room_topic(ROOM),
                "users": users,
            }
            for users in split(range(members), plan.load_processes)
        ]
    try:
        with LoadGroup(target, specs, f"fanout-{side}") as group:
            group.gather(120.0, expect="ready")
            times = Window.after(plan)
            group.send_all(("run", window(members), times.as_tuple()))
            cpu = times.watch({"server": [server.pid], "load": group.pids})
            done = [d[1] for d in group.gather(plan.measure + 30.0, expect="done")]
    finally:
        server.stop()
    deliveries = sum(d["deliveries"] for d in done)
    posts = sum(d["posts"] for d in done)
    lat = percentiles(x for d in done for x in d["latencies"])
    figures = {
        "deliveries_per_s": round(deliveries / times.length, 1),
        **lat,
        "cpu": cpu,
        "posts_sent": posts,
        "failures": sum(d["failures"] for d in done),
    }
    print(
        f"    {side:6}: {figures['deliveries_per_s']:10.0f} deliveries/s  p50 {lat['p50_ms']} ms"
        f"  p99 {lat['p99_ms']} ms  cpu {cpu}",
        flush=True,
    )
    return figures


def run(plan: Plan) -> None:
    sides = ["ours", "relay", *(["irc"] if plan.peers else [])]
    for members in plan.pick([10, 100], [10, 100, 1000]):
        print(f"  room fan-out, {members} members, window {window(members)}", flush=True)
        figures = {}
        for side in sides:
            try:
                figures[side] = _side(plan, side, members)
            except Exception as exc:
                if side != "irc":
                    raise
                plan.note(f"IRC fan-out ({members} members) not measured: {exc}")
        record(
            plan,
            "fanout",
            {"members": members, "window": window(members), "load_processes": plan.load_processes},
            figures,
            metrics={"deliveries_per_s": "deliveries/s", "p50_ms": "ms", "p99_ms": "ms"},
        )
