"""Who gets in: CurveZMQ by default, clear errors for the wrong key, no routing-id squatting.

Every server in the other tests runs CurveZMQ too (it is the default); these
tests check the edges: where keys live, what a client with the wrong key, no
key or no encryption is told, that nobody can take over another client's
connection by naming its routing id, and that only the clients of live
sessions can listen to the PUB socket (rooms, presence).
"""

from __future__ import annotations

import queue
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from libimchat import ChatError, Client, Server
from libimchat import protocol as p
from libimchat.keys import PUBLIC_FILE, SECRET_FILE
from tests.faults.proxy import Proxy
from tests.helpers import (
    HEARTBEAT,
    LIVENESS,
    drain,
    logged_in,
    raw_dealer,
    signup,
    start_server,
    wait_for,
)


def insecure_server(data_dir: Path) -> Server:
    return Server(
        data_dir,
        heartbeat_interval=HEARTBEAT,
        heartbeat_liveness=LIVENESS,
        password_profile="fast",
        insecure=True,
    ).start()


# --- keys


def test_the_url_carries_the_key_made_on_first_start_and_kept(tmp_path: Path) -> None:
    with Server(tmp_path, password_profile="fast") as server:
        first = server.url
    location, _, key = first.partition("#")
    assert location == f"tcp://127.0.0.1:{server.port}"
    assert len(key) == 40 and (tmp_path / PUBLIC_FILE).read_text().count(key) == 1
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert key not in (tmp_path / SECRET_FILE).read_text().split("secret-key")[1]
    with Server(tmp_path, password_profile="fast") as again:
        assert again.url.partition("#")[2] == key


def test_a_local_client_finds_the_key_of_a_default_server(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # platformdirs' default data dir
    with Server(password_profile="fast") as server:
        assert server.data_dir == tmp_path / "libimchat"
        with Client(f"tcp://127.0.0.1:{server.port}", timeout=5) as client:
            signup(client, "ali")
            assert client.login("ali", "pw").username == "ali"


def test_imchat_key_prints_the_key_the_server_then_uses(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "libimchat", "key", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with Server(tmp_path, password_profile="fast") as server:
        assert server.url.endswith("#" + printed)


# --- the wrong key, or none


def test_a_wrong_server_key_is_a_clear_error_not_a_hang(server: Server) -> None:
    wrong = zmq.curve_keypair()[0].decode()
    with Client(server.url.partition("#")[0], server_key=wrong, timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(ChatError) as caught:
            signup(client, "ali")
    assert caught.value.code == "handshake_failed"
    assert "server key is probably wrong" in caught.value.message
    assert time.monotonic() - started < 5  # told at once, not after the 10 s timeout


def test_a_plain_text_client_is_refused_by_a_curve_server(server: Server) -> None:
    client = Client(server.url.partition("#")[0], insecure=True, timeout=10)
    with client, pytest.raises(ChatError) as caught:
        signup(client, "ali")
    assert caught.value.code == "handshake_failed"
    assert "encrypts" in caught.value.message


def test_a_curve_client_of_an_insecure_server_is_told_so(tmp_path: Path) -> None:
    server = insecure_server(tmp_path)
    try:
        assert "#" not in server.url
        key = zmq.curve_keypair()[0]
        client = Client(server.url, server_key=key, timeout=10)
        with client, pytest.raises(ChatError) as caught:
            signup(client, "ali")
        assert caught.value.code == "handshake_failed"
        assert "--insecure" in caught.value.message
        with Client(server.url, insecure=True, timeout=5) as plain:
            signup(plain, "ali")
            assert plain.login("ali", "pw").online
    finally:
        server.stop()


def test_no_key_anywhere_is_refused_before_connecting(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with pytest.raises(ChatError) as caught:
        Client("tcp://127.0.0.1:5555")
    assert caught.value.code == "handshake_failed"
    assert "imchat serve" in caught.value.message
    with pytest.raises(ChatError) as bad:
        Client("tcp://127.0.0.1:5555#not-a-key")
    assert bad.value.code == "invalid"


def test_a_client_with_a_bogus_key_pair_gets_nowhere(server: Server, user) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        forger = ctx.socket(zmq.DEALER)
        forger.setsockopt(zmq.LINGER, 0)
        forger.curve_serverkey = server.public_key
        forger.curve_publickey = zmq.curve_keypair()[0]  # someone else's public key
        forger.curve_secretkey = zmq.curve_keypair()[1]  # and a secret that does not match it
        forger.connect(f"tcp://127.0.0.1:{server.port}")
        forger.send_multipart(p.encode(p.ListUsers(rid=1)))
        assert not forger.poll(1000)  # no answer: the handshake never completed
        forger.close()
    finally:
        ctx.term()
    assert [u.username for u in user("ali").users()] == ["ali"]  # and the server goes on


# --- routing ids


def test_a_client_that_picks_its_own_routing_id_cannot_log_in(server: Server, user) -> None:
    user("ali").logout()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        chooser = raw_dealer(ctx, server, routing_id=b"ali")
        chooser.send_multipart(p.encode(p.Login(rid=1, username="ali", password="pw")))
        assert chooser.poll(5000)
        reply = p.decode(chooser.recv_multipart())
        assert isinstance(reply, p.Failure) and reply.code == "bad_request"
        assert "routing id" in reply.message
        chooser.close()
    finally:
        ctx.term()


class HandmadePeer:
    """A ZMTP 3.0 DEALER written by hand (NULL mechanism), so that it can claim
    any routing id, even one starting with a zero byte, which libzmq's own API
    refuses to set."""

    def __init__(self, port: int, routing_id: bytes) -> None:
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        greeting = b"\xff" + bytes(8) + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\0") + bytes(32)
        self.conn.sendall(greeting)
        self._read_exactly(64)
        ready = b"\x05READY" + _property(b"Socket-Type", b"DEALER")
        self._send(ready + _property(b"Identity", routing_id), command=True)

    def send(self, frame: bytes) -> None:
        self._send(frame, command=False)

    def received(self, within: float) -> list[bytes]:
        """Every message frame that arrives within ``within`` seconds (commands left out)."""
        self.conn.settimeout(0.1)
        data, deadline = b"", time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = self.conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break  # the server closed the connection
            data += chunk
        return [body for flags, body in _frames(data) if not flags & 0x04]

    def _send(self, body: bytes, *, command: bool) -> None:
        flags = 0x04 if command else 0
        if len(body) > 255:
            self.conn.sendall(bytes([flags | 0x02]) + len(body).to_bytes(8, "big") + body)
        else:
            self.conn.sendall(bytes([flags, len(body)]) + body)

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            assert chunk, "the server closed the connection during the greeting"
            data += chunk
        return data


def _property(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + len(value).to_bytes(4, "big") + value


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while len(data) >= 2:
        flags = data[0]
        size, start = (int.from_bytes(data[1:9], "big"), 9) if flags & 0x02 else (data[1], 2)
        frames.append((flags, data[start : start + size]))
        data = data[start + size :]
    return frames


def test_a_squatter_on_someones_routing_id_receives_nothing_of_theirs(tmp_path: Path) -> None:
    server = insecure_server(tmp_path)  # NULL mechanism, so the hand-made peer can speak it
    try:
        vic = logged_in(server.url, "vic", insecure=True)
        sam = logged_in(server.url, "sam", insecure=True)
        with vic, sam:
            assert server._directory is not None
            (peer,) = [s.peer for s in server._directory.sessions.values() if s.user_id == 1]
            squatter = HandmadePeer(server.port, peer)
            squatter.send(p.encode(p.Ping(rid=7, inbox_seen=0))[0])  # acting as vic
            sam.send("vic", "for vic only")
            assert wait_for(vic, lambda e: e.kind == "message").message.body == "for vic only"
            assert squatter.received(within=1.0) == []
            assert [u.username for u in vic.users() if u.online] == ["sam", "vic"]
    finally:
        server.stop()


# --- what an eavesdropper sees


@pytest.mark.parametrize("insecure", [False, True], ids=["curve", "insecure-control"])
def test_the_bytes_on_the_wire_hold_no_message_or_password(tmp_path: Path, insecure) -> None:
    server = start_server(tmp_path, insecure=insecure)
    password, words, room_words = "hunter2-Pa55word", "meet me at the old mill", "room secret"
    try:
        with Proxy.in_front_of(server) as proxy:
            url = proxy.url(server.url)
            ali = Client(url, timeout=5, insecure=insecure)
            sam = Client(url, timeout=5, insecure=insecure)
            with ali, sam:
                for client, name in ((ali, "ali"), (sam, "sam")):
                    signup(client, name, password=password)
                    client.login(name, password)
                ali.create_room("mill")
                sam.join("mill")
                ali.send("sam", words)
                ali.send_room("mill", room_words)
                wait_for(sam, lambda e: e.kind == "message" and e.message.body == words)
                wait_for(sam, lambda e: e.kind == "room_message" and e.message.body == room_words)
            wire = proxy.captured()
    finally:
        server.stop()
    assert len(wire) > 1000  # the proxy did see the conversation
    secrets = [password.encode(), words.encode(), room_words.encode(), b"mill"]
    if insecure:  # the control: the same capture of a plain-text server shows them all
        assert all(secret in wire for secret in secrets)
    else:
        assert [secret for secret in secrets if secret in wire] == []


# --- the PUB socket: only the clients of live sessions listen


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


class RawSubscriber:
    """A bare SUB on the server's PUB port, subscribed to everything, presenting ``keypair``."""

    def __init__(
        self, ctx: zmq.Context[zmq.Socket[bytes]], server: Server, keypair: tuple[bytes, bytes]
    ) -> None:
        self.socket = ctx.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        assert server.public_key is not None
        self.socket.curve_serverkey = server.public_key
        self.socket.curve_publickey, self.socket.curve_secretkey = keypair
        self.socket.subscribe(b"")
        self._monitor = self.socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        self.socket.connect(f"tcp://{server.host}:{server.pub_port}")

    def let_in(self) -> bool:
        """Whether the server completed the handshake (False: its gatekeeper refused it)."""
        assert self._monitor.poll(5000), "no handshake within 5 s"
        return recv_monitor_message(self._monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED

    def heard(self, within: float) -> list[p.ProtocolMessage]:
        got = []
        while self.socket.poll(int(within * 1000)):
            got.append(p.decode(self.socket.recv_multipart()))
            within = 0.05
        return got


class Heard:
    """What a client receives on its SUB socket from now on (not what it backfills)."""

    def __init__(self, client: Client) -> None:
        self._queue: queue.SimpleQueue[p.ProtocolMessage] = queue.SimpleQueue()
        core = client._link.core
        published = core.published

        def spy(frames: list[bytes]) -> list:  # type: ignore[type-arg]
            self._queue.put(p.decode(frames))
            return published(frames)

        core.published = spy  # type: ignore[method-assign]

    def wait_for(
        self, match: Callable[[p.ProtocolMessage], bool], timeout: float = 5.0
    ) -> p.ProtocolMessage:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if match(msg):
                return msg
        raise AssertionError(f"no matching publication within {timeout} s")


def post_until_heard(sender: Client, room: str, listener: Heard, within: float = 10.0) -> None:
    """Post in ``room`` until ``listener`` receives a post of it over PUB.

    Its SUB connects after its session starts, asynchronously: a post made
    before the subscription took effect reaches it by backfill only.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sender.send_room(room, "are you listening?")
        try:
            listener.wait_for(lambda m: isinstance(m, p.RoomPost), timeout=0.2)
            return
        except AssertionError:
            continue
    raise AssertionError(f"no room message arrived over PUB within {within} s")


def test_a_stranger_hears_no_room_and_no_presence(server: Server, user, ctx) -> None:
    ali, sam = user("ali"), user("sam")
    stranger = RawSubscriber(ctx, server, zmq.curve_keypair())  # no account, the right key
    assert not stranger.let_in()
    heard = Heard(sam)
    ali.create_room("mill")
    sam.join("mill")
    post_until_heard(ali, "mill", heard)  # a member hears the room over PUB
    ali.send_room("mill", "meet me at the old mill")
    assert wait_for(sam, lambda e: e.kind == "room_message" and "old" in e.message.body)
    user("bob").logout()  # presence, twice
    heard.wait_for(lambda m: isinstance(m, p.PresenceChanged) and not m.online)
    assert stranger.heard(within=0.5) == []


def test_a_client_that_logged_out_cannot_listen_again(server: Server, user, ctx) -> None:
    ali, sam = user("ali"), user("sam")
    keypair = ali._link._keypair
    assert keypair is not None
    # the control: while ali's session lives, ali's key is let in and hears
    during = RawSubscriber(ctx, server, keypair)
    assert during.let_in()
    sam.create_room("before")
    assert any(isinstance(m, p.RoomCreated) for m in during.heard(within=5.0))
    during.socket.close()
    ali.logout()
    assert ali._link._sub is None  # the client let go of its own SUB
    after = RawSubscriber(ctx, server, keypair)
    assert not after.let_in()
    sam.create_room("after")
    sam.rename("sammy")
    assert after.heard(within=0.5) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_after_a_server_restart_rooms_are_heard_over_pub_again(tmp_path: Path) -> None:
    ports = {"port": _free_port(), "pub_port": _free_port()}
    server = start_server(tmp_path, **ports)
    try:
        with logged_in(server.url, "ali") as ali, logged_in(server.url, "sam") as sam:
            ali.create_room("mill")
            sam.join("mill")
            heard = Heard(sam)
            post_until_heard(ali, "mill", heard)
            server.stop()
            # libzmq reconnects sam's SUB to the new server by itself, most likely
            # before sam resumes: refused then, and never tried again by libzmq
            server = start_server(tmp_path, **ports)
            post_until_heard(ali, "mill", heard)  # both resume by themselves
            # and the application saw every post once, in order
            assert [e.message for e in drain(sam) if e.kind == "room_message"] == (
                sam.room_history("mill")
            )
    finally:
        server.stop()
