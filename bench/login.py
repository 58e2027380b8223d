"""Scenario 5: what a login costs, and how many reconnects with a resume token a second.

Password logins: clients log in over and over with ``Login`` against a server
using the ``owasp`` Argon2id profile; each one costs the server a hash check.
The baseline is argon2-cffi checking the same hash in a loop, in one process:
the floor any server using that profile pays.

Reconnects: each client opens a new DEALER, sends ``Resume`` with its token,
waits for ``SessionStarted``, closes, and starts again; latency is from the new
socket to the answer. The baseline runs the same loop against the relay (a
new DEALER and a first round trip). There is no IRC figure: InspIRCd
finishes every registration on its one-second timer, by design.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from libimchat.passwords import Passwords

from .measure import percentiles
from .plan import Plan, Window
from .procs import LoadGroup, report_errors, split
from .report import record
from .seed import PASSWORD
from .servers import launch
from .wire import FAILURE, LOGGED_IN, WIRES, Sim

RECONNECTORS = 50  # clients reconnecting at once
LOGGERS = 2  # clients logging in with a password at once (one per load process)


@report_errors
def load(conn: Any, spec: dict[str, Any]) -> None:
    """Clients that log in (``password``) or reconnect (``resume``) in a closed loop."""
    conn.send(("ready", None))
    order = conn.recv()
    if order[0] == "stop":
        return
    result = _argon2(order[1]) if spec["mode"] == "argon2" else _zmq_loop(spec, order[1])
    conn.send(("done", result))
    conn.recv()


def _argon2(times: tuple[float, float, float, float]) -> dict[str, Any]:
    passwords = Passwords("owasp")
    stored = passwords.hash(PASSWORD)
    start, t0, t1, end = times
    latencies = []
    while time.monotonic() < start:
        time.sleep(0.001)
    while (now := time.monotonic()) < end:
        passwords.verify(stored, PASSWORD)
        if t0 <= now < t1:
            latencies.append(time.monotonic() - now)
    return {"latencies": latencies}


def _zmq_loop(spec: dict[str, Any], times: tuple[float, float, float, float]) -> dict[str, Any]:
    """Password logins on kept connections, or reconnect + resume on new ones."""
    from libimchat import protocol as p

    wire = WIRES[spec["wire"]]()
    ctx: zmq.Context[Any] = zmq.Context()
    start, t0, t1, end = times
    latencies: list[float] = []
    failures: set[str] = set()
    began: dict[zmq.Socket[Any], float] = {}
    owner: dict[zmq.Socket[Any], Sim] = {}
    poller = zmq.Poller()
    password = spec["mode"] == "password"
    attempts = 0

    def begin(index: int, sim: Sim | None = None) -> None:
        nonlocal attempts
        if sim is None:  # a new connection each time
            attempts += 1
            sim = wire.open(ctx, spec["url"], index, tag=f".{attempts}")
            poller.register(sim.dealer, zmq.POLLIN)
            owner[sim.dealer] = sim
        if password:
            request = p.encode(p.Login(rid=sim.next_rid(), username=sim.name, password=PASSWORD))
        else:
            request = wire.login(sim)
        began[sim.dealer] = time.monotonic()
        sim.dealer.send_multipart(request)

    while time.monotonic() < start:
        time.sleep(0.001)
    for index in spec["users"]:
        begin(index)
    while time.monotonic() < end:
        for sock, _ in poller.poll(5):
            kind, detail = wire.read(sock.recv_multipart())
            now = time.monotonic()
            if kind == FAILURE:
                failures.add(detail)
            elif spec["wire"] == "ours" and kind != LOGGED_IN:
                continue
            if t0 <= began[sock] and now < t1:
                latencies.append(now - began[sock])
            sim = owner[sock]
            if password:
                begin(sim.index, sim)
                continue
            poller.unregister(sock)
            del owner[sock], began[sock]
            sock.close(0)
            if now < end:
                begin(sim.index)
    for sock in owner:
        sock.close(0)
    ctx.term()
    return {"latencies": latencies, "failure_codes": sorted(failures)}


def _measure(
    plan: Plan, name: str, specs: list[dict[str, Any]], server_pid: int | None, per: str
) -> dict[str, Any]:
    with LoadGroup(load, specs, name) as group:
        group.gather(60.0, expect="ready")
        times = Window.after(plan)
        group.send_all(("run", times.as_tuple()))
        cpu = times.watch({"server": [server_pid] if server_pid else [], "load": group.pids})
        done = [d[1] for d in group.gather(plan.measure + 30.0, expect="done")]
    lat = [x for d in done for x in d["latencies"]]
    codes = sorted({c for d in done for c in d.get("failure_codes", [])})
    figures = {per: round(len(lat) / times.length, 1), **percentiles(lat), "cpu": cpu}
    if codes:
        figures["failure_codes"] = codes
    # CPU each: the server's, or (for the argon2 baseline, which has none) the load process's
    busy = cpu["server"] if server_pid else cpu["load"]
    figures["cpu_ms_each"] = round(1000 * busy / max(figures[per], 1e-9), 2)
    print(
        f"    {name:16}: {figures[per]:8.0f} {per}  p50 {figures['p50_ms']} ms"
        f"  p99 {figures['p99_ms']} ms  cpu {cpu}",
        flush=True,
    )
    return figures


def run(plan: Plan) -> None:
    print(f"  password logins (Argon2id owasp), {LOGGERS} clients at once", flush=True)
    users = max(LOGGERS, RECONNECTORS)
    with launch(
        "ours",
        plan.fresh_dir("login"),
        users=users,
        password_profile="owasp",
        heartbeat_interval=60.0,
    ) as server:
        specs = [
            {"mode": "password", "wire": "ours", "url": server.url, "users": part}
            for part in split(range(LOGGERS), plan.load_processes)
        ]
        ours = _measure(plan, "login-ours", specs, server.pid, "logins_per_s")
    base = _measure(plan, "login-argon2", [{"mode": "argon2"}], None, "logins_per_s")
    record(
        plan,
        "login",
        {"profile": "owasp", "clients": LOGGERS},
        {"ours": ours, "argon2": base},
        baseline="argon2",
        baseline_label="argon2-cffi verify alone, one process",
        metrics={"logins_per_s": "logins/s", "cpu_ms_each": "ms", "p99_ms": "ms"},
    )

    print(f"  reconnects with a resume token, {RECONNECTORS} clients at once", flush=True)
    figures = {}
    for side in ("ours", "relay"):
        with launch(
            side, plan.fresh_dir(f"resume-{side}"), users=users, heartbeat_interval=60.0
        ) as server:
            specs = [
                {"mode": "resume", "wire": side, "url": server.url, "users": part}
                for part in split(range(RECONNECTORS), plan.load_processes)
            ]
            figures[side] = _measure(plan, f"resume-{side}", specs, server.pid, "reconnects_per_s")
    if plan.peers:
        plan.note(
            "reconnects: no IRC figure. InspIRCd completes a registration on its one-second"
            " timer by design (inspircd/inspircd#1242), so it would measure that timer."
        )
    record(
        plan,
        "reconnect",
        {"clients": RECONNECTORS, "with": "resume token"},
        figures,
        metrics={"reconnects_per_s": "reconnects/s", "p50_ms": "ms", "p99_ms": "ms"},
    )
