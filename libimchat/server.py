"""The server's runner: owns the ROUTER and PUB sockets and feeds the directory.

Each turn of the loop drains up to a batch of requests from the ROUTER socket,
hands them to :class:`~libimchat.directory.Directory` (which commits them in
one transaction), then sends the replies and publishes the events it returns.
Logins and signups first wait for their Argon2 work, done on other threads
(password_pool.py), together with whatever their peer sent after them.
Sends never block: what a peer has no room for waits in the outbox
(outbox.py), within bounds; a peer that does not read loses it and its
session, and a slow client resumes and resends. A subscriber that does not
read loses publications and catches up from the store, as every client
does, by sequence number.

Both sockets are guarded by the gatekeeper (zap.py): the ROUTER takes any
client that speaks CurveZMQ with the server's key, the PUB socket only a SUB
whose public key a live session named in its Login or Resume, so strangers
read no room and no presence. Insecure (NULL) servers have no keys to check:
their PUB socket is open to anyone who can reach it. Either takes no more
connections than the process has file descriptors for (capacity.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from types import TracebackType

import zmq

from . import protocol as p
from . import zap
from .address import is_ipv6, server_url, tcp_endpoint
from .capacity import Capacity
from .directory import HEARTBEATS_PER_SECOND, SESSION_TTL, Directory, Outcome
from .keys import default_data_dir, server_keypair
from .limits import Limits
from .outbox import PEER_QUEUE, Outbox, send_frames
from .password_pool import PasswordPool
from .passwords import Passwords
from .store import Store

log = logging.getLogger(__name__)

BATCH = 512
MAX_FRAME = 1 << 20
# libzmq checks the size on the wire, where CurveZMQ wraps each frame in a
# MESSAGE command: a 16-byte header and nonce, a 16-byte MAC and a flags byte
CURVE_OVERHEAD = 33
DATABASE = "imchat.db"
TOKEN_CLEANUP_INTERVAL = 3600.0
BACKLOG = 4096
# A peer gone without a word must not hold its descriptor for good (capacity.py). An
# idle connection is probed after 60 s, then every 10 s, and dropped after 3 unanswered
# probes (~90 s); one with data unacknowledged (no probes are sent then) after 90 s
# (TCP_USER_TIMEOUT, Linux), not after the kernel's ~15 minutes of retransmissions
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 60, 10, 3
UNACKNOWLEDGED_FOR = 90_000  # ms
IDLE_POLL = 100  # ms the loop waits for a request
WAITING_POLL = 10  # ms it waits while messages wait for peers that read slowly (outbox.py)
__all__ = ["Server", "default_data_dir"]


class Server:
    """A libimchat chat server.

    Args:
        data_dir: the folder of the database (created if missing); ``None``
            for the per-user default (:func:`default_data_dir`).
        host: the interface to listen on.
        port: the request (ROUTER) port; 0 picks a free one.
        pub_port: the publication (PUB) port; 0 picks a free one when ``port``
            is 0, else it is ``port + 1``.
        heartbeat_interval: seconds between client heartbeats, told to clients:
            the shortest, since it grows when more sessions live than
            ``heartbeats_per_second``.
        heartbeat_liveness: heartbeats a session may miss before it ends.
        heartbeats_per_second: the heartbeats the server answers at most; with
            more sessions, clients are told a longer interval (whole seconds).
        password_profile: the Argon2id cost (see :mod:`libimchat.passwords`).
        session_ttl: seconds a login can be resumed without being used (30 days).
        limits: login tries, message rate and rooms per user (:class:`~libimchat.limits.Limits`).
        insecure: speak plain text instead of CurveZMQ. Anyone on the network
            then reads every message and password: only for a trusted network
            or for comparing costs.

    Raises:
        ValueError: the process's open-files limit (``ulimit -n``) is too low to
            take connections (128 or less).

    Use it as a context manager (``with Server(...) as server``), with
    :meth:`start`/:meth:`stop` (a background thread), or with
    :meth:`serve_forever` (this thread).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pub_port: int | None = None,
        heartbeat_interval: float = 1.0,
        heartbeat_liveness: int = 3,
        heartbeats_per_second: float = HEARTBEATS_PER_SECOND,
        password_profile: str = "owasp",
        session_ttl: float = SESSION_TTL,
        limits: Limits | None = None,
        insecure: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.host = host
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_liveness = heartbeat_liveness
        if not heartbeats_per_second > 0:
            raise ValueError(f"heartbeats_per_second must be positive, not {heartbeats_per_second}")
        self.heartbeats_per_second = heartbeats_per_second
        self._requested = (port, pub_port if pub_port is not None else (port + 1 if port else 0))
        # every answer is worked out ahead by the loop's PasswordPool, never on the loop
        self._passwords = Passwords(password_profile, worked_ahead=True)
        self.session_ttl = session_ttl
        self.insecure = insecure
        self.limits = limits or Limits()
        self.capacity = Capacity()  # read when created: the open-files limit of this process
        self.public_key: bytes | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = 0
        self.pub_port = 0
        self.failure: BaseException | None = None
        self._directory: Directory | None = None

    @property
    def url(self) -> str:
        """All a client needs: ``tcp://host:port#public-key`` (no key when insecure)."""
        if not self.port:
            raise RuntimeError("the server is not listening yet; call start()")
        return server_url(self.host, self.port, self.public_key)

    # --- life cycle

    def start(self) -> Server:
        """Bind the sockets and serve on a background thread; returns once listening."""
        ready = threading.Event()
        self.failure = None

        def run() -> None:
            try:
                self._serve(ready)
            except BaseException as exc:
                log.exception("the server stopped on an error")
                self.failure = exc
                ready.set()

        self._stopping.clear()
        self._thread = threading.Thread(target=run, name="libimchat-server", daemon=True)
        self._thread.start()
        ready.wait()
        if self.failure is not None:
            raise self.failure
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and close the database; safe to call twice."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called from another thread, or Ctrl-C.

        Starts the server first if :meth:`start` was not called. Returns at once
        if :meth:`stop` was called since (a SIGTERM handler, say, before this
        call was reached): a stopped server is not started again.

        Raises:
            Exception: whatever stopped the server, if it was not asked to stop.
        """
        if self._thread is None and not self._stopping.is_set():
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)  # wake up now and then, so that Ctrl-C is seen
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        if self.failure is not None:
            raise self.failure

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the loop

    def _serve(self, ready: threading.Event) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = None
        if not self.insecure:
            self.public_key, secret = server_keypair(self.data_dir)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        _let_the_loop_finish_its_turn(ctx)  # before the first socket starts libzmq's threads
        gatekeeper = zap.Gatekeeper(ctx, curve=secret is not None)
        router = ctx.socket(zmq.ROUTER)
        publisher = ctx.socket(zmq.PUB)
        # last before the try, so that it is always closed: it runs a thread
        store = Store(self.data_dir / DATABASE, background_checkpoints=True)
        directory: Directory | None = None  # made once the ports are known

        def may_subscribe(key: bytes) -> bool:
            # asked on this thread, by the loop, which starts after the directory exists
            return directory is not None and directory.may_subscribe(key.decode())

        try:
            for sock in (router, publisher):
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME + (CURVE_OVERHEAD if secret else 0))
                # libzmq's accept queue holds 100; a reconnect storm overflows it
                sock.setsockopt(zmq.BACKLOG, BACKLOG)
                # a peer gone without a word (power cut, NAT timeout) keeps its connection,
                # and its descriptor, until TCP notices
                sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
                sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, KEEPALIVE_IDLE)
                sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, KEEPALIVE_INTERVAL)
                sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, KEEPALIVE_PROBES)
                sock.setsockopt(zmq.TCP_MAXRT, UNACKNOWLEDGED_FOR)
                if secret is not None:
                    sock.setsockopt(zmq.CURVE_SERVER, 1)
                    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            gatekeeper.guard(router, zap.REQUESTS, has_capacity=self.capacity.takes_clients)
            gatekeeper.guard(
                publisher,
                zap.PUBLICATIONS,
                admits=may_subscribe,
                has_capacity=self.capacity.takes_subscribers,
            )
            router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            router.setsockopt(zmq.SNDHWM, PEER_QUEUE)  # the rest waits in the Outbox
            # a second connection claiming a routing id in use is turned away,
            # never handed the first one's messages
            router.setsockopt(zmq.ROUTER_HANDOVER, 0)
            self.port = self._bind(router, self._requested[0])
            self.pub_port = self._bind(publisher, self._requested[1])
            directory = Directory(
                store,
                self._passwords,
                welcome=p.Welcome(
                    rid=0,
                    version=p.PROTOCOL_VERSION,
                    pub_port=self.pub_port,
                    heartbeat_interval=self.heartbeat_interval,
                    heartbeat_liveness=self.heartbeat_liveness,
                ),
                heartbeats_per_second=self.heartbeats_per_second,
                session_ttl=self.session_ttl,
                limits=self.limits,
                max_sessions=self.capacity.sessions,
            )
            self._directory = directory  # for tests that look at sessions
            log.info("serving on %s (publishing on port %d)", self.url, self.pub_port)
            ready.set()
            self._loop(directory, store, router, publisher, gatekeeper)
        finally:
            router.close(linger=0)
            publisher.close(linger=0)
            gatekeeper.socket.close(linger=0)
            ctx.term()
            store.close()

    def _bind(self, sock: zmq.Socket[bytes], port: int) -> int:
        if is_ipv6(self.host):
            sock.setsockopt(zmq.IPV6, 1)
        sock.bind(tcp_endpoint(self.host, port or "*"))
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return int(endpoint.rsplit(":", 1)[1])

    def _loop(
        self,
        directory: Directory,
        store: Store,
        router: zmq.Socket[bytes],
        publisher: zmq.Socket[bytes],
        gatekeeper: zap.Gatekeeper,
    ) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(gatekeeper.socket, zmq.POLLIN)
        passwords = PasswordPool(self._passwords)
        poller.register(passwords.fileno(), zmq.POLLIN)
        outbox = Outbox(router)
        next_expiry = time.monotonic() + self.heartbeat_interval
        next_cleanup = 0.0
        try:
            while not self._stopping.is_set():
                ready = dict(poller.poll(WAITING_POLL if outbox else IDLE_POLL))
                if gatekeeper.socket in ready:
                    gatekeeper.answer()
                now = time.time()
                batch = []
                if passwords.fileno() in ready:  # Argon2 done: first the requests that waited
                    batch += passwords.release(directory.password_work, now)
                if router in ready:
                    batch += passwords.admit(_receive(router), directory.password_work, now)
                if batch:
                    self._send(directory.handle_batch(batch, now), outbox, publisher)
                    self._passwords.forget_kept()
                if outbox and (not_reading := outbox.flush(time.monotonic())):
                    self._send(directory.drop_readers(not_reading, time.time()), outbox, publisher)
                if time.monotonic() >= next_expiry:
                    try:
                        self._send(directory.expire(time.time()), outbox, publisher)
                    except Exception:  # a bug of ours must not stop the service
                        log.exception("ending silent sessions failed")
                    next_expiry = time.monotonic() + self.heartbeat_interval
                store.checkpoint()  # after the sends: no reply waits for it
                if time.monotonic() >= next_cleanup:
                    next_cleanup = time.monotonic() + TOKEN_CLEANUP_INTERVAL
                    try:
                        directory.forget_old_tokens(time.time())
                    except Exception:  # housekeeping must never stop the service
                        log.exception("deleting expired resume tokens failed")
        finally:
            passwords.close()

    def _send(self, outcome: Outcome, outbox: Outbox, publisher: zmq.Socket[bytes]) -> None:
        now = time.monotonic()
        for peer, msg in outcome.replies:
            outbox.send([peer, *p.encode(msg)], now)
        for publication in outcome.publications:
            try:
                send_frames(publisher, p.publication(publication))
            except zmq.Again:  # a subscriber that does not read: it catches up by seq
                log.debug("dropped a publication")


def _let_the_loop_finish_its_turn(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    """Run libzmq's threads under ``SCHED_BATCH`` where there is one (Linux).

    The loop wakes the I/O thread with every reply it sends. Under the default
    policy the woken thread preempts the loop on a busy core, mid-batch; under
    ``SCHED_BATCH`` it does not preempt, and runs when the loop blocks (in a
    commit or in poll) or its slice ends, sending what has gathered with fewer
    wake-ups: at peak its voluntary switches fell from 1,500-3,100 to 650-870
    a second, and 100 users' peak rose by ~5% (docs/BENCH.md). The loop itself
    keeps the default policy, so that a request wakes it at once.

    libzmq aborts the process when it cannot set the policy it was given, so
    the policy is tried first on a thread that ends at once: the caller's own
    policy is never touched.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    allowed: list[bool] = []

    def probe() -> None:
        with contextlib.suppress(OSError):  # not allowed here (a sandbox, say)
            os.sched_setscheduler(0, policy, os.sched_param(0))
            allowed.append(True)

    prober = threading.Thread(target=probe, name="libimchat-sched-probe")
    prober.start()
    prober.join()
    if not allowed:
        log.info("libzmq's threads keep the default scheduling policy")
        return
    ctx.set(zmq.THREAD_SCHED_POLICY, policy)


def _receive(router: zmq.Socket[bytes]) -> list[tuple[bytes, list[bytes]]]:
    """Up to :data:`BATCH` requests waiting on the ROUTER socket, as ``(peer, frames)``."""
    batch = []
    for _ in range(BATCH):
        try:
            frames = router.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        if len(frames) < 2:
            continue
        if not _assigned_by_libzmq(frames[0]):
            _turn_away(router, frames[0])
            continue
        batch.append((frames[0], frames[1:]))
    return batch


def _assigned_by_libzmq(peer: bytes) -> bool:
    """Whether a routing id is one the server's libzmq made up (zero byte + 32-bit counter).

    Those start from a random number and never cross the wire, so no one else
    can know them; libzmq refuses to let a client choose one that starts with a
    zero byte. A session is bound to the id of the connection it logged in on,
    so a client that picks its own id (to squat on someone's, say) gets no
    session at all.
    """
    return len(peer) == 5 and peer[0] == 0


def _turn_away(router: zmq.Socket[bytes], peer: bytes) -> None:
    refusal = p.Failure(rid=0, code="bad_request", message="a client must not set a routing id")
    with contextlib.suppress(zmq.ZMQError):
        router.send_multipart([peer, *p.encode(refusal)], zmq.NOBLOCK)
