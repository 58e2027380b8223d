"""A client's connection to the server: one background thread that owns the sockets.

ZeroMQ sockets must stay on one thread, and a client must keep its heartbeat
going while the application sits in a Tk main loop or awaits something else.
So every client runs a :class:`Link`: a thread that owns the DEALER (requests,
replies, direct messages) and SUB (room channels, presence) sockets, carries
out what :class:`~libimchat.core.ClientCore` decides, sends heartbeats, and
reconnects with backoff when the server falls silent. Callers hand it requests
from any thread and get a :class:`concurrent.futures.Future`; the sync Client
waits on it, the AsyncClient awaits it. Keeping asyncio out of the socket code
also sidesteps cancelled-recv message loss and the Windows proactor loop.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import protocol as p
from .address import Address, is_ipv6
from .core import (
    Action,
    ClientCore,
    ConnectSubscriber,
    DisconnectSubscriber,
    Emit,
    Resolve,
    Subscribe,
    Transmit,
    Unsubscribe,
)
from .errors import ChatError, ProtocolError
from .models import Event

log = logging.getLogger(__name__)

MAX_FRAME = 1 << 20
_DRAIN = 500
# handshakes broken off in a row that mean a wrong key (libzmq retries every 0.1 s)
HANDSHAKES_BROKEN_OFF = 3
_WATCHED_EVENTS = (
    zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class Link:
    """The I/O thread of one client.

    Args:
        address: the server's host, port and public key (see :mod:`libimchat.address`).
        emit: called on the link's thread with each event for the application.
        heartbeat_interval: seconds between heartbeats; ``None`` takes the server's.
        heartbeat_liveness: heartbeats missed before the server is thought gone.
        reconnect_max: the longest wait between reconnection attempts (seconds).
    """

    def __init__(
        self,
        address: Address,
        *,
        emit: Callable[[Event], None],
        heartbeat_interval: float | None = None,
        heartbeat_liveness: int | None = None,
        reconnect_max: float = 32.0,
        agent: str = "libimchat",
    ) -> None:
        self.address = address
        # this client's own CURVE keypair, for as long as it lives; the public
        # half is named in Login and Resume, for the server's PUB socket to admit
        self._keypair = zmq.curve_keypair() if address.server_key else None
        self.refusal: ChatError | None = None  # why the last handshake failed, if it did
        self._broken_off = 0  # handshakes broken off in a row
        self._handshakes = 0  # handshakes that succeeded on the current DEALER
        self._key_accepted = False  # a handshake with this server succeeded once
        self._turned_away = False  # the server's gate refused the current DEALER: it is full
        self.core = ClientCore(agent, self._keypair[0].decode() if self._keypair else "")
        self._emit = emit
        self._interval = heartbeat_interval
        self._liveness = heartbeat_liveness
        self._reconnect_max = reconnect_max
        self._commands: queue.SimpleQueue[tuple[str, object, Future[p.Reply] | None]] = (
            queue.SimpleQueue()
        )
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._futures: dict[int, Future[p.Reply]] = {}
        # requests the DEALER's queue had no room for, in order, sent as it drains
        self._unsent: collections.deque[list[bytes]] = collections.deque()
        self._topics: set[bytes] = set()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="libimchat-link", daemon=True)
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._dealer: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._sub: zmq.Socket[bytes] | None = None
        self._heard = self._sent = 0.0
        self._polled: tuple[object, ...] = ()
        self._polling = zmq.Poller()

    # --- called from any thread

    def start(self) -> None:
        self._thread.start()

    def request(self, request: p.Request) -> Future[p.Reply]:
        """Send a request; the future gets the server's reply (a Failure too)."""
        future: Future[p.Reply] = Future()
        if self._closing:
            _fail_closed(future)
            return future
        if self.refusal is not None:
            future.set_exception(self.refusal)
            return future
        try:  # what MessagePack cannot carry fails here, in the caller's thread
            p.encode(request)
        except (TypeError, ValueError, OverflowError) as exc:
            name = type(request).__name__
            future.set_exception(ChatError("invalid", f"cannot send this {name}: {exc}"))
            return future
        self._command("request", request, future)
        if self._closing:  # the thread may have ended before it saw the request: fail it here
            _fail_closed(future)
        return future

    def forget(self, future: Future[p.Reply]) -> None:
        """Stop waiting for a request's reply."""
        self._command("forget", None, future)

    def close(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._command("close", None, None)
            self._thread.join(timeout)
        self._closing = True
        self._wake_reader.close()
        self._wake_writer.close()

    def _command(self, name: str, arg: object, future: Future[p.Reply] | None) -> None:
        self._commands.put((name, arg, future))
        # a full buffer holds wake-ups enough; a closed one means we are closing
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    # --- the link's thread

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("the client's connection thread failed")
        finally:
            self._closing = True  # before the last look at the commands (see request())
            for future in self._futures.values():
                _fail_closed(future)
            while True:
                try:
                    _, _, waiting = self._commands.get_nowait()
                except queue.Empty:
                    break
                if waiting is not None:
                    _fail_closed(waiting)
            self._close_dealer()
            if self._sub is not None:
                self._sub.close(linger=0)

    def _loop(self) -> None:
        backoff, retry_at = 1.0, 0.0
        while not self._closing:
            now = time.monotonic()
            self._do(self.core.tick(now))
            interval = self._interval or self.core.heartbeat_interval or 1.0
            liveness = self._liveness or self.core.heartbeat_liveness or 3
            if self._dealer is None and now >= retry_at:
                self._open_dealer()
            elif self._dealer is not None and (
                self._turned_away or now - self._heard > interval * liveness
            ):
                self._close_dealer()
                # half the backoff, plus up to as much again at random: clients that
                # lost a server together do not all come back at the same instant
                retry_at = now + backoff * random.uniform(0.5, 1.0)
                backoff = min(backoff * 2, self._reconnect_max)
                self._do(self.core.connection_lost())
                continue
            elif self._dealer is not None and now - self._sent >= interval:
                self._do(self.core.heartbeat())
            wait = interval / 2 if self._dealer else min(interval / 2, max(retry_at - now, 0.01))
            due = self.core.next_due()  # a postponed fetch or resume
            if due is not None:
                wait = min(wait, max(due - now, 0.01))
            ready = dict(self._poller().poll(int(wait * 1000)))
            if self._wake_reader.fileno() in ready:
                self._drain_wakeups()
            # the monitor first: replies read after a reconnection must meet a core
            # that knows the connection is new (else they would ask to resume twice)
            if self._monitor is not None and self._monitor in ready:
                self._watch_connection(self._monitor)
            dealer = self._dealer
            if dealer is not None and ready.get(dealer, 0) & zmq.POLLOUT:
                self._send_unsent(dealer)
            if (
                dealer is not None
                and ready.get(dealer, 0) & zmq.POLLIN
                and self._drain(dealer, self.core.received)
            ):
                self._heard, backoff = time.monotonic(), 1.0
            if self._sub is not None and self._sub in ready:
                self._drain(self._sub, self.core.published)

    def _poller(self) -> zmq.Poller:
        """A poller of the wake-up pipe and the current sockets, made anew only when they
        change; it waits for room on the DEALER while requests wait for it."""
        sockets = (self._dealer, self._sub, self._monitor)
        waiting = bool(self._unsent)
        if self._polled != (*sockets, waiting):
            self._polled = (*sockets, waiting)
            self._polling = zmq.Poller()
            self._polling.register(self._wake_reader, zmq.POLLIN)
            for sock in sockets:
                if sock is not None:
                    self._polling.register(sock, zmq.POLLIN)
            if self._dealer is not None and waiting:
                self._polling.register(self._dealer, zmq.POLLIN | zmq.POLLOUT)
        return self._polling

    def _open_dealer(self) -> None:
        self._dealer = self._socket(zmq.DEALER)
        self._monitor = self._dealer.get_monitor_socket(_WATCHED_EVENTS)
        self._dealer.connect(self.address.endpoint())
        self._heard = self._sent = time.monotonic()
        self._do(self.core.connection_made())

    def _close_dealer(self) -> None:
        if self._dealer is not None:
            self._dealer.disable_monitor()
            if self._monitor is not None:
                self._monitor.close(linger=0)
                self._monitor = None
            self._dealer.close(linger=0)
            self._dealer = None
            self._handshakes = 0
            self._turned_away = False
            self._unsent.clear()  # the core sends what is pending again on the next connection

    def _socket(self, kind: int) -> zmq.Socket[bytes]:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
        if is_ipv6(self.address.host):
            sock.setsockopt(zmq.IPV6, 1)
        if self._keypair is not None and self.address.server_key is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.address.server_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self._keypair[0])
            sock.setsockopt(zmq.CURVE_SECRETKEY, self._keypair[1])
        return sock

    def _watch_connection(self, monitor: zmq.Socket[bytes]) -> None:
        """Follow the DEALER's connection as libzmq makes and loses it; see refusals.

        libzmq re-makes a broken connection by itself, and the server's ROUTER
        knows the new one under a new routing id, so the session is gone. A
        lost connection is told to the core (and the application) at once; a
        handshake after the first one starts the connection afresh (Hello,
        Resume) at once, rather than when a heartbeat finds out. That is how a
        client comes back quickly after a server restart even when the server
        asked for heartbeats many seconds apart.

        A mismatch of mechanisms or a refusal by the server's gatekeeper is
        final for this connection: its calls fail at once, saying why. The
        gatekeeper of a libimchat server refuses a client's DEALER only when
        the server has no room for more connections (capacity.py): the
        refused DEALER is closed and, as after a silent server, opened again
        after the backoff (1 s doubling to ``reconnect_max``, drawn at random
        between half and all of it), so the client comes in when the server
        has room again.

        A handshake that just breaks off is what a wrong server key looks
        like, but also a server killed or a network reset mid-handshake: only
        :data:`HANDSHAKES_BROKEN_OFF` in a row, before any handshake with this
        server succeeded or its gatekeeper turned us away (it reads the
        handshake first), count as a refusal; after that, the key is known
        good and breaks are network trouble (a server gone behind a proxy,
        say), however long they last.
        """
        while monitor.poll(0):
            report = recv_monitor_message(monitor)
            event = report["event"]
            if event == zmq.EVENT_DISCONNECTED:
                # the SUB is left to libzmq until the next session start replaces it:
                # closing it here made a 500-client restart slower (1.5-1.9 s, not
                # 0.8-1.0), though a restarted server refuses it until we resume
                if self._handshakes:
                    self._unsent.clear()  # the core sends what is pending again
                    self._do(self.core.connection_lost())
                continue
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.refusal, self._broken_off, self._key_accepted = None, 0, True
                self._handshakes += 1
                if self._handshakes > 1:
                    self._heard = time.monotonic()  # silence while away is no reason to give up
                    self._unsent.clear()
                    self._do(self.core.connection_lost())  # nothing new if told already
                    self._do(self.core.connection_made())
                continue
            self._turned_away = event == zmq.EVENT_HANDSHAKE_FAILED_AUTH
            if self._turned_away:
                # the gate is asked only once the server has read our handshake: the key is good
                self._key_accepted = True
            else:
                self._broken_off += 1
            final = self._turned_away or (
                event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                and report["value"] == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
            )
            if not final and (self._key_accepted or self._broken_off < HANDSHAKES_BROKEN_OFF):
                continue
            self.refusal = self._refused(event)
            for future in self._futures.values():
                if not future.done():
                    future.set_exception(self.refusal)
            for rid in self._futures:
                self.core.forget(rid)
            self._futures.clear()

    def _refused(self, event: int) -> ChatError:
        where = f"the server at {self.address.endpoint()}"
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return ChatError(
                "server_full",
                f"{where} takes no more connections now; this client tries again by itself",
            )
        return ChatError("handshake_failed", self._explain(where, event))

    def _explain(self, where: str, event: int) -> str:
        if self.address.server_key is None:
            return (
                f"{where} encrypts (CurveZMQ) and this client was told to speak plain text;"
                " use the URL with its key that `imchat serve` printed"
            )
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and self._broken_off == 1:
            return (
                f"{where} does not speak CurveZMQ: it runs with --insecure, or is not a"
                " libimchat server"
            )
        return (
            f"{where} refused the encrypted handshake: the server key is probably wrong"
            f" ({self.address.server_key.decode()} was used; take it from the URL"
            " `imchat serve` printed), or the server runs with --insecure"
        )

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                name, arg, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if name == "close":
                self._closing = True
            elif name == "request" and future is not None:
                if self._closing:  # came after close(): its caller may have failed it already
                    _fail_closed(future)
                    continue
                try:
                    if not future.set_running_or_notify_cancel():
                        continue  # cancelled
                except RuntimeError:  # failed by its caller: close() gave up waiting for us
                    continue
                rid, actions = self.core.request(arg)  # type: ignore[arg-type]
                self._futures[rid] = future
                self._do(actions)
            elif name == "forget":
                for rid, waiting in list(self._futures.items()):
                    if waiting is future:
                        del self._futures[rid]
                        self.core.forget(rid)

    def _drain(
        self, sock: zmq.Socket[bytes], handle: Callable[[list[bytes]], list[Action]]
    ) -> bool:
        got = False
        for _ in range(_DRAIN):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            got = True
            try:
                self._do(handle(frames))
            except ProtocolError as exc:
                log.warning("ignoring a malformed frame from the server: %s", exc)
            except Exception:
                # a bug of ours must not stop the connection: log it, go on
                log.exception("failed to handle a frame from the server")
        return got

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self._transmit(action.request)
            elif isinstance(action, Resolve):
                future = self._futures.pop(action.rid, None)
                if future is not None and not future.done():
                    future.set_result(action.reply)
            elif isinstance(action, Emit):
                self._emit(action.event)
            elif isinstance(action, Subscribe):
                self._topics.add(action.topic)
                if self._sub is not None:
                    self._sub.setsockopt(zmq.SUBSCRIBE, action.topic)
            elif isinstance(action, Unsubscribe):
                if action.topic in self._topics:
                    self._topics.discard(action.topic)
                    if self._sub is not None:
                        self._sub.setsockopt(zmq.UNSUBSCRIBE, action.topic)
            elif isinstance(action, ConnectSubscriber):
                self._connect_subscriber(action.port)
            elif isinstance(action, DisconnectSubscriber):
                self._close_subscriber()

    def _transmit(self, request: p.Request) -> None:
        if self._dealer is None:
            return  # still pending in the core; resent after reconnecting
        self._unsent.append(p.encode(request))
        self._send_unsent(self._dealer)

    def _send_unsent(self, dealer: zmq.Socket[bytes]) -> None:
        """Send what waits, in order, until the DEALER's queue is full (then poll for room)."""
        while self._unsent:
            try:
                dealer.send_multipart(self._unsent[0], zmq.NOBLOCK)
            except zmq.Again:
                return
            self._unsent.popleft()
            self._sent = time.monotonic()

    def _close_subscriber(self) -> None:
        if self._sub is not None:
            self._sub.close(linger=0)
            self._sub = None

    def _connect_subscriber(self, port: int) -> None:
        # not monitored, unlike the DEALER: a SUB the server's PUB gate refuses
        # (our session ended, or had not started again when libzmq reconnected it)
        # is no reason to fail the caller's requests; the core reconnects it at the
        # next session start, and heartbeats backfill whatever it missed meanwhile
        self._close_subscriber()
        self._sub = self._socket(zmq.SUB)
        for topic in self._topics:
            self._sub.setsockopt(zmq.SUBSCRIBE, topic)
        self._sub.connect(self.address.endpoint(port))


def _fail_closed(future: Future[p.Reply]) -> None:
    """Fail ``future`` with ``closed``, unless it is done (two threads may both try)."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(ChatError("closed", "the client is closed"))
