"""Scenario 3, past the open-files limit: more connections than the server may hold.

A process may open only so many descriptors (20,000 here, and it cannot be
raised), and each connection takes one. Once a server is out of them, libzmq's
listener cannot accept the next connection and tries again at once, for ever:
a core spins, and the client waits unanswered in the kernel's queue. Our server
turns connections away before that (libimchat/capacity.py).

Each side runs with an open-files limit of :data:`OPEN_FILES` (the mechanism is
the same at 20,000; at 2,048 it takes seconds, not minutes), and one load
process opens :data:`STRANGERS` DEALERs at once, more than that limit, the way
a crowd of clients or a careless script would. Measured: how many are let in,
turned away, or left unanswered after :data:`ANSWER_WITHIN` seconds, and the
server's CPU while they hold their connections.

In full mode, also at the machine's own limit (20,000 descriptors a process):
:data:`CLIENTS_AT_LIMIT` idle clients of the connections scenario, a DEALER
and a SUB each, 20,000 connections. Measured: how many log in, how many are
told ``server_full``, the descriptors the server holds and its CPU while they
idle.
"""

from __future__ import annotations

import os
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import connections
from .measure import CpuWindow
from .plan import Plan
from .procs import LoadGroup, report_errors
from .ready import ReadySockets
from .report import record
from .servers import launch

OPEN_FILES = 2048
STRANGERS = 2500
ANSWER_WITHIN = 5.0  # seconds
HOLD = 3.0  # seconds the connections are held, the server's CPU measured
CLIENTS_AT_LIMIT = 10_000
_OUTCOMES = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH


def _stranger(ctx: zmq.Context[Any], url: str) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """A DEALER connecting to ``url`` (encrypted if it names a key), and a monitor of its
    handshake, made before it connects so that no outcome is missed."""
    location, _, server_key = url.partition("#")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    if server_key:
        dealer.curve_serverkey = server_key.encode()
        dealer.curve_publickey, dealer.curve_secretkey = zmq.curve_keypair()
    monitor = dealer.get_monitor_socket(_OUTCOMES)
    dealer.connect(location)
    return dealer, monitor


@report_errors
def knock(conn: Any, spec: dict[str, Any]) -> None:
    """A load process: on ``("knock",)``, open the strangers' DEALERs and watch each
    handshake; report, then hold the connections until ``("stop",)``."""
    ctx: zmq.Context[Any] = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 16384)  # a stranger is 3: its DEALER and its monitor's pair
    conn.send(("ready", None))
    conn.recv()
    ready = ReadySockets()
    began = time.monotonic()
    dealers, monitors = [], {}
    for _ in range(spec["count"]):
        dealer, monitor = _stranger(ctx, spec["url"])
        dealers.append(dealer)
        monitors[monitor] = dealer
        ready.add(monitor)
    outcomes: dict[int, int] = {}
    answered_at = None
    while monitors and time.monotonic() < began + spec["answer_within"]:
        for monitor in ready.wait(0.05):
            event = recv_monitor_message(monitor)["event"]
            outcomes[event] = outcomes.get(event, 0) + 1
            ready.remove(monitor)
            monitors.pop(monitor).disable_monitor()
            monitor.close(0)
        if not monitors:
            answered_at = time.monotonic()
    conn.send(
        (
            "knocked",
            {
                "let_in": outcomes.get(zmq.EVENT_HANDSHAKE_SUCCEEDED, 0),
                "turned_away": outcomes.get(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 0),
                "unanswered": len(monitors),
                "answered_all_s": round(answered_at - began, 2) if answered_at else None,
            },
        )
    )
    try:
        conn.recv()
    finally:
        ready.close()
        for monitor in monitors:
            monitor.close(0)
        for dealer in dealers:
            dealer.close(0)
        ctx.term()


def _side(plan: Plan, side: str) -> dict[str, Any]:
    server = launch(side, plan.fresh_dir(f"full-{side}"), open_files=OPEN_FILES)
    spec = {"url": server.url, "count": STRANGERS, "answer_within": ANSWER_WITHIN}
    try:
        with LoadGroup(knock, [spec], f"full-{side}") as group:
            group.gather(60.0, expect="ready")
            group.send_all(("knock",))
            ((_, figures),) = group.gather(ANSWER_WITHIN + 60.0, expect="knocked")
            cpu = CpuWindow({"server": [server.pid], "load": group.pids})
            cpu.start()
            time.sleep(HOLD)
            figures["cpu"] = cpu.stop()
            figures["server_cores_held"] = figures["cpu"]["server"]
    finally:
        server.stop()
    print(
        f"    {side:6}: {figures['let_in']} let in, {figures['turned_away']} turned away,"
        f" {figures['unanswered']} unanswered; server {figures['server_cores_held']} cores",
        flush=True,
    )
    return figures


def _clients_at_the_limit(plan: Plan, side: str) -> dict[str, Any]:
    clients = CLIENTS_AT_LIMIT
    server = launch(
        side,
        plan.fresh_dir(f"full-clients-{side}"),
        users=clients,
        heartbeat_interval=connections.HEARTBEAT,
    )
    heartbeat = connections.expected_interval(clients)
    specs = connections.crowd_specs(plan, side, server, clients, heartbeat)
    try:
        with LoadGroup(connections.load, specs, f"full-clients-{side}") as group:
            group.gather(120.0, expect="ready")
            group.send_all(("connect", time.monotonic() + 40.0))
            connected = group.gather(60.0, expect="connected")
            idle_end = time.monotonic() + 2.0 + HOLD + 1.0
            group.send_all(("idle", idle_end, False))
            time.sleep(2.0)
            cpu = CpuWindow({"server": [server.pid], "load": group.pids})
            cpu.start()
            time.sleep(HOLD)
            used = cpu.stop()
            held = len(os.listdir(f"/proc/{server.pid}/fd"))
            idled = group.gather(30.0, expect="idled")
    finally:
        server.stop()
    figures = {
        "logged_in": sum(c[2] for c in connected),
        "told_server_full": sum(i[1]["failures"].get("server_full", 0) for i in idled),
        "server_descriptors": held,
        "server_cores_held": used["server"],
        "cpu": used,
    }
    print(
        f"    {side:6}: {figures['logged_in']} of {clients} logged in,"
        f" {figures['told_server_full']} told server_full; the server holds {held}"
        f" descriptors, {used['server']} cores",
        flush=True,
    )
    return figures


def run(plan: Plan) -> None:
    print(
        f"  past the open-files limit: {STRANGERS:,} connections to a server"
        f" limited to {OPEN_FILES:,} descriptors",
        flush=True,
    )
    figures = {side: _side(plan, side) for side in ("ours", "relay")}
    record(
        plan,
        "full",
        {"open files": OPEN_FILES, "connections": STRANGERS},
        figures,
        metrics={
            "let_in": "connections",
            "turned_away": "connections",
            "unanswered": "connections",
            "server_cores_held": "cores",
        },
    )
    if plan.quick:
        return
    print(
        f"  at the machine's open-files limit: {CLIENTS_AT_LIMIT:,} clients,"
        f" {2 * CLIENTS_AT_LIMIT:,} connections",
        flush=True,
    )
    figures = {side: _clients_at_the_limit(plan, side) for side in ("ours", "relay")}
    record(
        plan,
        "full",
        {"clients": CLIENTS_AT_LIMIT, "open files": "the machine's"},
        figures,
        metrics={
            "logged_in": "clients",
            "told_server_full": "clients",
            "server_descriptors": "descriptors",
            "server_cores_held": "cores",
        },
    )
