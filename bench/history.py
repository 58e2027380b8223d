"""Scenario 4: a page of 50 messages from a conversation, as the database grows.

One database grows from 10^5 to 10^6 (and, in a full run, 10^7) messages over
100 conversations (bench/seed.py). At each size a client asks our server for
pages of 50 of conversation 0, each before a random message of it (``History``
with ``before``), one request at a time; the latency is from the request's
send to its reply, both timed in the load process. The baseline is the same
page read straight from the file with sqlite3 and the same query (no server,
no wire): what is left is the server's own cost. The cost must not grow with
the size.
"""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

import msgpack
import zmq

from libimchat import protocol as p
from libimchat.server import DATABASE

from .measure import percentiles
from .plan import Plan, Window
from .procs import LoadGroup, report_errors
from .report import record
from .seed import add_history, seed_users, username
from .servers import OurServer
from .wire import OursWire, log_in_all

PAGE = 50


@report_errors
def load(conn: Any, spec: dict[str, Any]) -> None:
    """One reader: pages through our server (``direct``) or straight from the file."""
    rng = random.Random(1)
    befores = spec["befores"]
    if spec["via"] == "sqlite":
        db = sqlite3.connect(spec["db"])
        conn.send(("ready", None))
        order = conn.recv()
        result = _pages(order[1], lambda: _sqlite_page(db, rng.choice(befores)))
        db.close()
        conn.send(("done", result))
        conn.recv()
        return
    wire = OursWire()
    ctx: zmq.Context[Any] = zmq.Context()
    sim = wire.open(ctx, spec["url"], 0)
    try:
        log_in_all(wire, [sim], timeout=30.0)
        conn.send(("ready", None))
        order = conn.recv()
        peer = username(1)

        def page() -> int:
            before = rng.choice(befores)
            sim.dealer.send_multipart(
                p.encode(p.History(rid=sim.next_rid(), peer=peer, limit=PAGE, before=before))
            )
            if not sim.dealer.poll(10_000):
                raise RuntimeError("no answer to History within 10 s")
            reply = msgpack.unpackb(sim.dealer.recv())
            if reply["t"] != "MessagePage":
                raise RuntimeError(f"History failed: {reply}")
            return len(reply["messages"])

        conn.send(("done", _pages(order[1], page)))
        conn.recv()
    finally:
        sim.dealer.close(0)
        ctx.term()


def _sqlite_page(db: sqlite3.Connection, before: int) -> int:
    """The store's own queries for a page (the ``before`` lookup, then the page)."""
    conversation, seq = db.execute(
        "SELECT conversation_id, seq FROM messages WHERE id = ?", [before]
    ).fetchone()
    rows = db.execute(
        "SELECT id, conversation_id, seq, sender_id, recipient_id, inbox_seq, body, sent_at,"
        " client_id FROM messages WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC"
        " LIMIT ?",
        [conversation, seq, PAGE],
    ).fetchall()
    return len(rows)


def _pages(times: tuple[float, float, float, float], page: Any) -> dict[str, Any]:
    start, t0, t1, end = times
    latencies: list[float] = []
    short = 0
    while time.monotonic() < start:
        time.sleep(0.001)
    while (now := time.monotonic()) < end:
        got = page()
        done = time.monotonic()
        if t0 <= now < t1:
            latencies.append(done - now)
            short += got < PAGE
    return {"latencies": latencies, "short_pages": short}


def _measure(plan: Plan, spec: dict[str, Any], server_pid: int | None) -> dict[str, Any]:
    with LoadGroup(load, [spec], f"history-{spec['via']}") as group:
        group.gather(60.0, expect="ready")
        times = Window.after(plan)
        group.send_all(("run", times.as_tuple()))
        cpu = times.watch({"server": [server_pid] if server_pid else [], "load": group.pids})
        (done,) = group.gather(plan.measure + 30.0, expect="done")
    lat = done[1]["latencies"]
    return {
        "pages_per_s": round(len(lat) / times.length, 1),
        **percentiles(lat),
        "cpu": cpu,
        "short_pages": done[1]["short_pages"],
    }


def run(plan: Plan) -> None:
    data_dir = plan.fresh_dir("history")
    seed_users(data_dir, 2 * 100)
    for total in plan.pick([10**5, 10**6], [10**5, 10**6, 10**7]):
        began = time.monotonic()
        befores = add_history(data_dir, total)
        print(
            f"  history, {total:,} messages (filled in {time.monotonic() - began:.0f} s)",
            flush=True,
        )
        spec = {"befores": befores, "db": str(data_dir / DATABASE)}
        with OurServer(data_dir, password_profile="fast", heartbeat_interval=60.0) as server:
            server.start()
            ours = _measure(plan, {**spec, "via": "server", "url": server.url}, server.pid)
        base = _measure(plan, {**spec, "via": "sqlite"}, None)
        for side, f in (("ours", ours), ("sqlite", base)):
            print(
                f"    {side:6}: {f['pages_per_s']:8.0f} pages/s  p50 {f['p50_ms']} ms"
                f"  p99 {f['p99_ms']} ms  cpu {f['cpu']}",
                flush=True,
            )
        record(
            plan,
            "history",
            {"stored_messages": total, "page": PAGE},
            {"ours": ours, "sqlite": base},
            baseline="sqlite",
            baseline_label="the same query in sqlite3, no server",
            metrics={"pages_per_s": "pages/s", "p50_ms": "ms", "p99_ms": "ms"},
        )
