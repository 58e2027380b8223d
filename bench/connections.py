"""Scenario 3: many logged-in, idle clients; then the server restarts under them.

Each client holds a DEALER (logged in with ``Resume``, pinging at the
heartbeat interval the server tells it, as the real client does) and a SUB (on
a quiet room topic: see QUIET_TOPIC): two connections on the server. Measured:
the time for all to log in, the server's RSS per client, its CPU while they
idle, and, after a restart of the server on the same ports, the time until
every client has its session back. Like libimchat's client, a client watches
its DEALER's handshakes and resumes as soon as libzmq has reconnected it; a
heartbeat that the new server answers with ``not_logged_in`` would do it too,
later. The relay gets the same clients, at the interval our server told them,
and the same restart; its "session back" is the answer to the hello sent on
reconnecting. The open-files limit (20,000 a process) bounds N: 9,000 clients
are 18,000 connections on the server.
"""

from __future__ import annotations

import collections
import heapq
import math
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from libimchat.directory import HEARTBEATS_PER_SECOND, heartbeat_interval_for
from libimchat.protocol import room_topic

from .measure import CpuWindow, rss_bytes, wait_until
from .plan import Plan
from .procs import LoadGroup, report_errors, split
from .ready import ReadySockets
from .report import record
from .servers import launch
from .wire import ACK, FAILURE, LOGGED_IN, WIRES, subscribe

HEARTBEAT = 1.0  # the server's default: its interval below HEARTBEATS_PER_SECOND sessions
# Real clients also subscribe to presence (GLOBAL_TOPIC), and then N logins publish N
# presence events to up to N subscribers: 40 million deliveries for 9,000 clients, which no
# load process here can read (tried: 2,328 of 9,000 logged in after 120 s). So the SUBs hold
# their connection on a room topic nobody posts to.
QUIET_TOPIC = room_topic("bench idle room")
# each costs the load process 6 descriptors: 2 connections, and the mailboxes of the
# DEALER, the SUB and the DEALER's monitor (a pair of sockets)
CLIENTS_PER_PROCESS = 2000


class Crowd:
    """A load process's idle clients and their heartbeats."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.wire = WIRES[spec["wire"]]()
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.ctx.set(zmq.MAX_SOCKETS, 16384)  # the default is 1,023 sockets
        self.spec = spec
        self.sims = [self.wire.open(self.ctx, spec["url"], i) for i in spec["users"]]
        self.owner = {sim.dealer: sim for sim in self.sims}
        self.ready = ReadySockets()
        self.watched: dict[Any, Any] = {}  # a DEALER's monitor -> its sim
        self.dropped: set[Any] = set()  # sims whose DEALER lost its connection
        for sim in self.sims:
            self.ready.add(sim.dealer)
            monitor = sim.dealer.get_monitor_socket(
                zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
            )
            self.watched[monitor] = sim
            self.ready.add(monitor)
        self.interval = {sim: spec["heartbeat"] for sim in self.sims}  # until told otherwise
        self.told: set[float] = set()  # the intervals the server told
        # when each logged-in sim heartbeats next; ``due`` is a heap of (when, index, sim)
        # that may hold stale entries, skipped when they come up
        self.next_ping: dict[Any, float] = {}
        self.due: list[tuple[float, int, Any]] = []
        self.back_at: dict[Any, float] = {}  # when a client got its session back after a restart
        self.restarted_at: float | None = None
        self.published = self.pongs = self.relogins = 0
        self.failures: collections.Counter[str] = collections.Counter()

    def close(self) -> None:
        for monitor in self.watched:
            monitor.close(0)
        for sim in self.sims:
            sim.dealer.close(0)
            if sim.sub is not None:
                sim.sub.close(0)
        self.ready.close()
        self.ctx.term()

    def log_in(self, sim: Any) -> None:
        sim.logged_in = False
        sim.dealer.send_multipart(self.wire.login(sim))
        self.ready.sent(sim.dealer)

    def live(
        self, until: float, *, stop_when_all_in: bool = False, orders: Any = None
    ) -> float | None:
        """Heartbeat and read until ``until``; returns when the last login finished, if all did.

        Args:
            until: the end (monotonic time).
            stop_when_all_in: end as soon as every client is logged in.
            orders: the orchestrator's pipe during a restart: it sends
                ``("restarted", when)``, and the phase ends once every client is back.
        """
        last_in = None
        while (now := time.monotonic()) < until:
            if orders is not None and self.restarted_at is None and orders.poll():
                self.restarted_at = orders.recv()[1]
            while self.due and self.due[0][0] <= now:
                when, _, sim = heapq.heappop(self.due)
                if when != self.next_ping[sim]:
                    continue
                sim.dealer.send_multipart(self.wire.ping(sim))
                self.ready.sent(sim.dealer)
                self._schedule(sim, now + self.interval[sim])
            for sock in self.ready.wait(0.01):
                if sock in self.watched:
                    self._watch(sock)
                    continue
                sim = self.owner.get(sock)
                if sim is None:
                    continue  # a SUB closed while handling an earlier socket of the list
                if sock is sim.sub:
                    while True:  # to the end: ReadySockets signals a socket once
                        try:
                            sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self.published += 1
                    continue
                while True:
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._answer(sim, self.wire.read(frames))
            if stop_when_all_in and all(sim.logged_in for sim in self.sims):
                last_in = time.monotonic()
                break
            if orders is not None and len(self.back_at) == len(self.sims):
                break
        return last_in

    def _watch(self, monitor: Any) -> None:
        """As libimchat's client does: a handshake after a lost connection means libzmq
        reconnected us: say hello (resume) at once."""
        sim = self.watched[monitor]
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_DISCONNECTED:
                self.dropped.add(sim)
            elif sim in self.dropped:
                self.dropped.discard(sim)
                self.log_in(sim)

    def _unsubscribe(self, sim: Any) -> None:
        if sim.sub is not None:
            self.ready.remove(sim.sub)
            del self.owner[sim.sub]
            sim.sub.close(0)
            sim.sub = None

    def _subscribe(self, sim: Any) -> None:
        """Connect the sim's SUB anew, as a client does after each session start: our
        server admits a subscriber's key only while its session lives, and libzmq
        does not retry a refused one (after a restart, say)."""
        self._unsubscribe(sim)
        subscribe(self.ctx, sim, self.spec["pub_url"], [self.spec["topic"]])
        self.ready.add(sim.sub)
        self.owner[sim.sub] = sim

    def _schedule(self, sim: Any, when: float) -> None:
        self.next_ping[sim] = when
        heapq.heappush(self.due, (when, sim.index, sim))

    def _answer(self, sim: Any, reply: tuple[str, Any]) -> None:
        kind, detail = reply
        now = time.monotonic()
        if kind in (LOGGED_IN, ACK) and detail:  # a heartbeat interval, told by our server
            told = detail
            self.told.add(told)
            self.interval[sim] = told
            # as a client heartbeats after ``interval`` of silence, whatever the interval
            # was when it last sent: a shorter one takes effect at once
            if sim in self.next_ping and now + told < self.next_ping[sim]:
                self._schedule(sim, now + told)
        # back after the restart: ours once it has resumed; the relay (no sessions) at any answer
        restarted = self.restarted_at is not None and now >= self.restarted_at
        if (
            restarted
            and sim not in self.back_at
            and (kind == LOGGED_IN or self.wire.name == "relay")
        ):
            self.back_at[sim] = now
        if kind == LOGGED_IN or (kind == ACK and not sim.logged_in):
            if kind == LOGGED_IN or sim.sub is None:
                self._subscribe(sim)
            if sim not in self.next_ping:
                self._schedule(sim, now + self.interval[sim])
            sim.logged_in = True
        elif kind == ACK:
            self.pongs += 1
        elif kind == FAILURE:
            self.failures[detail] += 1
        if kind == FAILURE and sim.logged_in:  # the server forgot us: resume
            self.relogins += 1
            self.log_in(sim)


@report_errors
def load(conn: Any, spec: dict[str, Any]) -> None:
    crowd = Crowd(spec)
    try:
        conn.send(("ready", None))
        while True:
            order = conn.recv()
            if order[0] == "stop":
                return
            if order[0] == "connect":
                for sim in crowd.sims:
                    crowd.log_in(sim)
                last_in = crowd.live(order[1], stop_when_all_in=True)
                conn.send(("connected", last_in, sum(s.logged_in for s in crowd.sims)))
            elif order[0] == "idle":
                crowd.back_at.clear()
                crowd.restarted_at = None
                crowd.live(order[1], orders=conn if order[2] else None)
                missing = sum(not s.logged_in for s in crowd.sims)
                conn.send(
                    (
                        "idled",
                        {
                            "back_at": sorted(crowd.back_at.values()),
                            "not_logged_in": missing,
                            "published": crowd.published,
                            "pongs": crowd.pongs,
                            "relogins": crowd.relogins,
                            "told": sorted(crowd.told),
                            "failures": dict(crowd.failures),
                        },
                    )
                )
    finally:
        crowd.close()


def expected_interval(clients: int) -> float:
    """The heartbeat interval our server tells this many clients (with its defaults)."""
    return heartbeat_interval_for(clients, HEARTBEAT, HEARTBEATS_PER_SECOND)


def crowd_specs(
    plan: Plan, side: str, server: Any, clients: int, heartbeat: float
) -> list[dict[str, Any]]:
    """The specs of the load processes (:func:`load`) that hold ``clients`` idle clients."""
    processes = max(plan.load_processes, math.ceil(clients / CLIENTS_PER_PROCESS))
    return [
        {
            "wire": side,
            "url": server.url,
            "pub_url": f"tcp://127.0.0.1:{server.pub_port}",
            "users": users,
            "topic": QUIET_TOPIC,
            "heartbeat": heartbeat,
        }
        for users in split(range(clients), processes)
    ]


def _side(plan: Plan, side: str, clients: int, heartbeat: float) -> dict[str, Any]:
    """One side's figures; its clients heartbeat every ``heartbeat`` s until told otherwise."""
    server = launch(
        side, plan.fresh_dir(f"connections-{side}"), users=clients, heartbeat_interval=HEARTBEAT
    )
    specs = crowd_specs(plan, side, server, clients, heartbeat)
    try:
        with LoadGroup(load, specs, f"connections-{side}") as group:
            group.gather(120.0, expect="ready")
            time.sleep(0.5)
            rss_before = rss_bytes(server.pid)
            began = time.monotonic()
            group.send_all(("connect", began + 120.0))
            connected = group.gather(130.0, expect="connected")
            if any(c[1] is None for c in connected):
                raise RuntimeError(
                    f"only {sum(c[2] for c in connected)} of {clients} clients logged in in 120 s"
                )
            login_s = max(c[1] for c in connected) - began
            # idle: every client heartbeats; measure the server's CPU and memory over two
            # intervals at least, after one in which every client learns the interval
            interval = expected_interval(clients)
            settle = time.monotonic() + interval
            idle_end = settle + max(plan.measure, 2 * interval)
            group.send_all(("idle", idle_end, False))
            wait_until(settle)
            cpu = CpuWindow({"server": [server.pid], "load": group.pids})
            cpu.start()
            wait_until(idle_end)
            idle_cpu = cpu.stop()
            rss_after = rss_bytes(server.pid)
            idled = group.gather(30.0, expect="idled")
            # restart under the clients
            storm_end = time.monotonic() + 30.0
            group.send_all(("idle", storm_end, True))
            port, pub_port = server.port, server.pub_port
            server.stop()
            server.start(port, pub_port)
            ready_at = time.monotonic()
            group.send_all(("restarted", ready_at))
            stormed = [s[1] for s in group.gather(60.0, expect="idled")]
    finally:
        server.stop()
    back = [t for s in stormed for t in s["back_at"]]
    missing = sum(s["not_logged_in"] for s in stormed)
    figures = {
        "login_all_s": round(login_s, 2),
        "rss_kib_per_client": round((rss_after - rss_before) / clients / 1024, 1),
        "idle_server_cores": idle_cpu["server"],
        "resumed_all_s": round(max(back) - ready_at, 2) if back and not missing else None,
        "cpu": idle_cpu,
        "rss_mib": round(rss_after / 2**20, 1),
        "not_back_after_restart": missing,
        "clients_back": len(back),
        "publications_read": sum(s["published"] for s in stormed),
        "heartbeats_answered_idle": sum(i[1]["pongs"] for i in idled),
        # the relay tells nothing: its clients keep the interval they were given
        "heartbeat_told_s": max((t for i in idled for t in i[1]["told"]), default=heartbeat),
    }
    print(
        f"    {side:6}: logged in {figures['login_all_s']} s, "
        f"{figures['rss_kib_per_client']} KiB/client, idle {figures['idle_server_cores']} "
        f"cores, back after restart {figures['resumed_all_s']} s ({missing} missing)",
        flush=True,
    )
    return figures


def run(plan: Plan) -> None:
    for clients in plan.pick([1000], [1000, 5000, 9000]):
        print(f"  idle connections: {clients} clients (DEALER + SUB each)", flush=True)
        figures = {}
        # the relay's clients heartbeat as often as our server asked its own to
        heartbeat = expected_interval(clients)
        for side in ("ours", "relay"):
            try:
                figures[side] = _side(plan, side, clients, heartbeat)
            except Exception as exc:  # near the open-files limit: say so, go on to the next side
                plan.note(f"connections, {clients} clients, {side}: {type(exc).__name__}: {exc}")
            else:
                heartbeat = figures[side]["heartbeat_told_s"]
        record(
            plan,
            "connections",
            {"clients": clients, "heartbeat_s": heartbeat},
            figures,
            metrics={
                "login_all_s": "s",
                "rss_kib_per_client": "KiB/client",
                "idle_server_cores": "cores",
                "resumed_all_s": "s",
            },
        )
