"""The client's sans-IO core: ordering, gap filling, resume — frames in, actions out."""

from __future__ import annotations

import dataclasses

from libimchat import protocol as p
from libimchat.core import (
    ClientCore,
    ConnectSubscriber,
    DisconnectSubscriber,
    Emit,
    Resolve,
    Subscribe,
    Transmit,
)
from libimchat.models import Message, Room, User

ALI = User(id=1, username="ali", first_name="A", last_name="L", online=True)


def message(seq: int, *, room: str | None = "Room1", sender: str = "sam") -> Message:
    return Message(
        id=100 + seq,
        seq=seq,
        sender=sender,
        recipient=None if room else "ali",
        room=room,
        body=f"m{seq}",
        sent_at=0.0,
        client_id=f"c{seq}",
    )


def session(
    rid: int,
    *,
    epoch: str = "run-1",
    rooms: dict[str, int] | None = None,
    inbox: int = 0,
    events_seq: int = 0,
) -> list[bytes]:
    """The server's SessionStarted for ali (token "tok"), encoded."""
    return p.encode(
        p.SessionStarted(
            rid=rid,
            user=ALI,
            token="tok",
            epoch=epoch,
            inbox_acked=inbox,
            inbox_head=inbox,
            rooms=tuple(p.RoomMark(room=r, seq=s) for r, s in (rooms or {}).items()),
            blocked=(),
            events_seq=events_seq,
        )
    )


def logged_in(core: ClientCore, *, rooms: dict[str, int] | None = None, inbox: int = 0) -> list:
    """Log the core in as ali, with these rooms at these sequence numbers."""
    rid, _ = core.request(p.Login(rid=0, username="ali", password="pw"))
    return core.received(session(rid, rooms=rooms, inbox=inbox))


def emitted(actions: list) -> list:
    return [a.event for a in actions if isinstance(a, Emit)]


def sent(actions: list) -> list:
    return [a.request for a in actions if isinstance(a, Transmit)]


def post(seq: int) -> list[bytes]:
    return p.publication(p.RoomPost(message=message(seq)))


def test_login_subscribes_to_server_events_and_rooms() -> None:
    actions = logged_in(ClientCore(), rooms={"Room1": 3})
    topics = [a.topic for a in actions if isinstance(a, Subscribe)]
    assert topics == [p.GLOBAL_TOPIC, p.room_topic("Room1")]
    assert any(isinstance(a, Resolve) for a in actions)


def test_room_messages_out_of_order_are_held_back_and_the_gap_fetched() -> None:
    core = ClientCore()
    logged_in(core, rooms={"Room1": 0})
    assert [e.message.seq for e in emitted(core.published(post(1)))] == [1]
    early = core.published(post(3))
    assert emitted(early) == []
    (fetch,) = sent(early)
    assert isinstance(fetch, p.RoomHistory) and (fetch.room, fetch.after_seq) == ("room1", 1)
    assert sent(core.published(post(4))) == []  # one fetch at a time
    page = p.MessagePage(rid=fetch.rid, messages=(message(2), message(3)))
    got = emitted(core.received(p.encode(page)))
    assert [e.message.seq for e in got] == [2, 3, 4]
    assert emitted(core.published(post(3))) == []  # a late duplicate is dropped


def test_a_heartbeat_that_shows_newer_room_messages_fetches_them() -> None:
    core = ClientCore()
    logged_in(core, rooms={"Room1": 5})
    (ping,) = sent(core.heartbeat())
    pong = p.Pong(
        rid=ping.rid, inbox_head=0, rooms=(p.RoomMark(room="Room1", seq=7),), events_seq=0
    )
    (fetch,) = sent(core.received(p.encode(pong)))
    assert isinstance(fetch, p.RoomHistory) and fetch.after_seq == 5


def test_the_server_sets_the_heartbeat_interval_at_session_start_and_in_each_pong() -> None:
    core = ClientCore()
    rid, _ = core.request(p.Login(rid=0, username="ali", password="pw"))
    started = p.decode(session(rid))
    core.received(p.encode(dataclasses.replace(started, heartbeat_interval=4.0)))
    assert core.heartbeat_interval == 4.0
    (ping,) = sent(core.heartbeat())
    core.received(p.encode(p.Pong(rid=ping.rid, inbox_head=0, rooms=(), events_seq=0)))
    assert core.heartbeat_interval == 4.0  # an older server's Pong says nothing: no change
    (ping,) = sent(core.heartbeat())
    pong = p.Pong(rid=ping.rid, inbox_head=0, rooms=(), events_seq=0, heartbeat_interval=9.0)
    core.received(p.encode(pong))
    assert core.heartbeat_interval == 9.0


def test_inbox_gaps_are_fetched_and_delivered_in_order() -> None:
    core = ClientCore()
    logged_in(core, inbox=2)
    delivery = p.Delivery(message=message(4, room=None))
    actions = core.received(p.encode(delivery))
    assert emitted(actions) == []
    (fetch,) = sent(actions)
    assert isinstance(fetch, p.Inbox) and fetch.after == 2
    page = p.MessagePage(rid=fetch.rid, messages=(message(3, room=None), message(4, room=None)))
    assert [e.message.seq for e in emitted(core.received(p.encode(page)))] == [3, 4]
    (ping,) = sent(core.heartbeat())
    assert isinstance(ping, p.Ping) and ping.inbox_seen == 4


def test_messages_from_blocked_senders_are_not_shown_but_counted() -> None:
    core = ClientCore()
    logged_in(core, rooms={"Room1": 0})
    rid, _ = core.request(p.Block(rid=0, username="SAM"))
    core.received(p.encode(p.Done(rid=rid)))
    assert emitted(core.published(post(1))) == []
    other = p.RoomPost(message=message(2, sender="bob"))
    assert [e.message.sender for e in emitted(core.published(p.publication(other)))] == ["bob"]


def test_a_missed_server_event_is_fetched() -> None:
    core = ClientCore()
    logged_in(core)
    renamed = p.Renamed(seq=2, old="bob", new="rob")
    actions = core.published(p.publication(renamed))
    assert emitted(actions) == []
    (fetch,) = sent(actions)
    assert isinstance(fetch, p.Events) and fetch.after == 0
    page = p.EventPage(
        rid=fetch.rid,
        events=(p.PresenceChanged(seq=1, username="bob", online=True), renamed),
        complete=True,
    )
    kinds = [e.kind for e in emitted(core.received(p.encode(page)))]
    assert kinds == ["presence", "rename"]


def test_a_request_refused_for_a_lost_session_is_resent_after_resuming() -> None:
    core = ClientCore()
    logged_in(core)
    rid, _ = core.request(p.SendDirect(rid=0, to="sam", body="hi", client_id="x"))
    failure = p.Failure(rid=rid, code="not_logged_in", message="log in first")
    actions = core.received(p.encode(failure))
    assert not any(isinstance(a, Resolve) for a in actions)
    (resume,) = sent(actions)
    assert isinstance(resume, p.Resume) and resume.token == "tok"
    resent = sent(core.received(session(resume.rid)))
    assert [(type(r), r.rid, r.client_id) for r in resent] == [(p.SendDirect, rid, "x")]


def reconnected(core: ClientCore) -> p.Resume:
    """Log the core in, lose its connection at 10 s and make a new one; the Resume it sent."""
    welcomed(core)
    logged_in(core)
    core.connection_lost()
    core.tick(10.0)
    (resume,) = [r for r in sent(core.connection_made()) if isinstance(r, p.Resume)]
    return resume


def test_a_resume_answered_after_its_window_still_resumes_the_session() -> None:
    # a restarted server taking back thousands of clients answers a resume late
    core = ClientCore()
    resume = reconnected(core)
    rid, _ = core.request(p.SendDirect(rid=0, to="sam", body="hi", client_id="x"))
    core.tick(10.0 + 3 * 1.0 + 0.5)  # past interval x liveness: given up on
    _, held = core.request(p.Invite(rid=0, room="Room1", username="sam"))
    assert sent(held) == []
    started = core.received(session(resume.rid))
    assert core.connected
    assert [e.online for e in emitted(started) if e.kind == "connection"] == [True]
    assert [(type(r), r.rid) for r in sent(started) if r.rid == rid] == [(p.SendDirect, rid)]
    assert [type(r) for r in sent(started)].count(p.Invite) == 1


def test_a_resume_refused_for_a_full_server_is_asked_again_when_the_server_says() -> None:
    core = ClientCore()
    resume = reconnected(core)
    full = p.Failure(rid=resume.rid, code="server_full", message="full", retry_after=5.0)
    assert sent(core.received(p.encode(full))) == []
    assert not core.connected and core.token == resume.token  # the session is kept, not live
    assert core.next_due() == 15.0  # when the link must wake up to tick
    core.tick(12.0)
    (ping,) = sent(core.heartbeat())
    forgot = p.Failure(rid=ping.rid, code="not_logged_in", message="log in first")
    assert sent(core.received(p.encode(forgot))) == []  # not before the server said
    assert sent(core.tick(14.0)) == []
    (again,) = sent(core.tick(15.5))  # before: at every heartbeat's not_logged_in
    assert isinstance(again, p.Resume) and again.token == resume.token
    assert sent(core.tick(21.0)) == [] and core.next_due() is None  # once
    started = core.received(session(again.rid))
    assert core.connected
    assert [e.online for e in emitted(started) if e.kind == "connection"] == [True]


def test_a_request_made_while_the_session_is_not_live_goes_out_once_when_it_resumes() -> None:
    # sent at once, it would also be resent with the pending ones: an Invite would push twice
    core = ClientCore()
    welcomed(core)
    logged_in(core)
    core.connection_lost()
    _, while_away = core.request(p.Invite(rid=0, room="Room1", username="sam"))
    connected = core.connection_made()
    _, while_resuming = core.request(p.Block(rid=0, username="max"))
    assert sent(while_away) == sent(while_resuming) == []
    assert [type(r) for r in sent(connected)] == [p.Hello, p.Resume]
    (resume,) = [r for r in sent(connected) if isinstance(r, p.Resume)]
    started = sent(core.received(session(resume.rid)))
    assert [type(r) for r in started if not isinstance(r, p.Inbox)] == [p.Invite, p.Block]
    _, live = core.request(p.Unblock(rid=0, username="max"))
    assert [type(r) for r in sent(live)] == [p.Unblock]


def test_two_resumes_answered_in_turn_send_a_held_request_once() -> None:
    # the first resume is given up on, a refused heartbeat asks again, and then the
    # server answers both: the second start must not send again what the first sent
    core = ClientCore()
    first = reconnected(core)
    core.request(p.Invite(rid=0, room="Room1", username="sam"))
    core.tick(10.0 + 3 * 1.0 + 0.5)  # past interval x liveness: given up on
    (ping,) = sent(core.heartbeat())
    refused = p.Failure(rid=ping.rid, code="not_logged_in", message="log in first")
    (second,) = sent(core.received(p.encode(refused)))
    assert isinstance(second, p.Resume)
    invites = [
        r
        for rid in (first.rid, second.rid)
        for r in sent(core.received(session(rid)))
        if isinstance(r, p.Invite)
    ]
    assert len(invites) == 1


def test_a_request_refused_for_a_lost_session_holds_the_next_ones_until_it_resumes() -> None:
    core = ClientCore()
    logged_in(core)
    rid, _ = core.request(p.SendDirect(rid=0, to="sam", body="hi", client_id="x"))
    (resume,) = sent(core.received(p.encode(p.Failure(rid=rid, code="not_logged_in", message=""))))
    _, held = core.request(p.Invite(rid=0, room="Room1", username="sam"))
    assert sent(held) == []
    resent = sent(core.received(session(resume.rid)))
    assert [type(r) for r in resent if not isinstance(r, p.Inbox)] == [p.SendDirect, p.Invite]


def test_a_request_after_the_session_expired_goes_out_at_once_to_be_refused() -> None:
    core = ClientCore()
    resume = reconnected(core)
    expired = p.Failure(rid=resume.rid, code="session_expired", message="log in again")
    core.received(p.encode(expired))
    _, actions = core.request(p.ListRooms(rid=0))
    assert [type(r) for r in sent(actions)] == [p.ListRooms]


def test_a_reply_after_the_caller_gave_up_still_tells_the_core_what_changed() -> None:
    core = ClientCore()
    logged_in(core, rooms={})
    block, _ = core.request(p.Block(rid=0, username="Sam"))
    join, _ = core.request(p.Join(rid=0, room="Room1"))
    core.forget(block)  # the caller's timeouts
    core.forget(join)
    assert core.received(p.encode(p.Done(rid=block))) == []  # nobody to resolve
    room = Room(name="Room1", created_by="sam", members=2, joined=True, last_seq=4)
    core.received(p.encode(p.RoomReply(rid=join, room=room)))
    assert core.blocked == {"sam"} and core.rooms["room1"].last == 4
    # so the room's posts are shown, but not the blocked user's
    shown = [
        *emitted(core.published(p.publication(p.RoomPost(message=message(5, sender="max"))))),
        *emitted(core.published(p.publication(p.RoomPost(message=message(6, sender="sam"))))),
    ]
    assert [e.message.seq for e in shown] == [5]


def test_a_message_to_our_new_name_before_we_hear_of_the_rename_arrives_once() -> None:
    # ali renamed herself "alice" from another client; the Renamed event is still on
    # its way when a message to "alice" comes: it is not a copy of one of hers
    core = ClientCore()
    logged_in(core)
    to_alice = dataclasses.replace(message(1, room=None), recipient="alice")
    actions = core.received(p.encode(p.Delivery(message=to_alice)))
    assert emitted(actions) == []
    (fetch,) = sent(actions)
    assert isinstance(fetch, p.Inbox) and fetch.after == 0
    page = p.MessagePage(rid=fetch.rid, messages=(to_alice,), more=False)
    assert [e.message for e in emitted(core.received(p.encode(page)))] == [to_alice]
    pong_rid = sent(core.heartbeat())[0].rid
    pong = p.Pong(rid=pong_rid, inbox_head=1, rooms=(), events_seq=0)
    assert emitted(core.received(p.encode(pong))) == [] and core.inbox.last == 1


def heard_of_three(core: ClientCore) -> list:
    """A heartbeat, and the Pong that tells of 3 messages in the inbox: its actions."""
    (ping,) = sent(core.heartbeat())
    return core.received(p.encode(p.Pong(rid=ping.rid, inbox_head=3, rooms=(), events_seq=0)))


def test_a_catch_up_refused_for_the_page_budget_is_asked_again_when_the_server_says() -> None:
    # another client of the user's read a lot of history: the budget is the user's
    core = ClientCore()
    logged_in(core)
    core.tick(100.0)

    (fetch,) = sent(heard_of_three(core))
    assert isinstance(fetch, p.Inbox)
    refusal = p.Failure(rid=fetch.rid, code="rate_limited", message="pages", retry_after=2.0)
    assert sent(core.received(p.encode(refusal))) == []
    assert [r for r in sent(heard_of_three(core)) if isinstance(r, p.Inbox)] == []  # still fetching
    assert sent(core.tick(101.5)) == []
    (again,) = sent(core.tick(102.5))  # before: only at a later heartbeat, 18 s apart
    assert isinstance(again, p.Inbox) and again.after == 0


def test_a_late_refusal_of_a_fetch_given_up_on_does_not_start_a_second_one() -> None:
    core = ClientCore()
    welcomed(core)
    logged_in(core)
    core.tick(100.0)

    (first,) = sent(heard_of_three(core))
    core.tick(104.0)  # past interval x liveness: given up on
    (second,) = sent(heard_of_three(core))
    assert isinstance(second, p.Inbox)
    late = p.Failure(rid=first.rid, code="rate_limited", message="pages", retry_after=1.0)
    assert sent(core.received(p.encode(late))) == []
    assert sent(core.tick(105.5)) == []  # the second is in flight: one backfill per stream


def test_a_request_whose_reply_was_dropped_with_the_session_goes_out_again() -> None:
    # the server ended the session of a client that read too slowly (outbox.py), and
    # dropped what waited for it: the History's page among it
    core = ClientCore()
    welcomed(core)
    logged_in(core)
    rid, actions = core.request(p.History(rid=0, peer="sam", limit=50))
    assert [type(r) for r in sent(actions)] == [p.History]
    (ping,) = sent(core.heartbeat())
    refused = p.Failure(rid=ping.rid, code="not_logged_in", message="log in first")
    (resume,) = sent(core.received(p.encode(refused)))
    resent = sent(core.received(session(resume.rid)))
    assert [r.rid for r in resent if isinstance(r, p.History)] == [rid]  # before: never


def test_a_held_join_subscribes_only_when_it_goes_out() -> None:
    # a caller that gives up on a held Join would leave its room subscribed for good
    core = ClientCore()
    resume = reconnected(core)
    _, held = core.request(p.Join(rid=0, room="Room2"))
    assert held == []
    started = core.received(session(resume.rid))
    topic = p.room_topic("Room2")
    joining = [
        type(a)
        for a in started
        if (isinstance(a, Subscribe) and a.topic == topic)
        or (isinstance(a, Transmit) and isinstance(a.request, p.Join))
    ]
    assert joining == [Subscribe, Transmit]


def test_a_server_of_another_protocol_version_fails_every_call() -> None:
    core = ClientCore()
    (hello,) = sent(core.connection_made())
    rid, _ = core.request(p.ListUsers(rid=0))
    refusal = p.Failure(rid=hello.rid, code="unsupported_version", message="speaks 2")
    (resolved,) = core.received(p.encode(refusal))
    assert isinstance(resolved, Resolve) and resolved.rid == rid
    assert resolved.reply.code == "unsupported_version"
    _, (later,) = core.request(p.ListRooms(rid=0))
    assert isinstance(later, Resolve) and later.reply.code == "unsupported_version"


def resumed(core: ClientCore, *, epoch: str, events_seq: int) -> list:
    (resume,) = sent(core._resume())
    return core.received(session(resume.rid, epoch=epoch, events_seq=events_seq))


def test_a_session_resumed_on_the_same_server_run_fetches_the_events_it_missed() -> None:
    core = ClientCore()
    logged_in(core)
    (fetch,) = [
        r for r in sent(resumed(core, epoch="run-1", events_seq=5)) if isinstance(r, p.Events)
    ]
    assert fetch.after == 0


def test_a_session_resumed_on_a_new_server_run_starts_from_its_events() -> None:
    core = ClientCore()
    logged_in(core)
    assert [
        r for r in sent(resumed(core, epoch="run-2", events_seq=5)) if isinstance(r, p.Events)
    ] == []
    assert core.events.last == 5


# --- the SUB socket: the server's PUB socket admits it only during a session


def subscriber_actions(actions: list) -> list:
    return [a for a in actions if isinstance(a, (ConnectSubscriber, DisconnectSubscriber))]


def welcomed(core: ClientCore, pub_port: int = 5556) -> list:
    """A new connection and the server's Welcome on it: the actions of both."""
    connected = core.connection_made()
    welcome = p.Welcome(
        rid=sent(connected)[0].rid,
        version=1,
        pub_port=pub_port,
        heartbeat_interval=1.0,
        heartbeat_liveness=3,
    )
    return connected + core.received(p.encode(welcome))


def test_the_subscriber_connects_after_login_only_and_names_its_key() -> None:
    core = ClientCore(subscriber_key="k" * 40)
    assert subscriber_actions(welcomed(core)) == []  # it would be refused before a session
    _, (login,) = core.request(p.Login(rid=0, username="ali", password="pw"))
    assert isinstance(login, Transmit) and login.request.subscriber_key == "k" * 40
    actions = logged_in(core)
    assert subscriber_actions(actions) == [ConnectSubscriber(5556)]
    connect = actions.index(ConnectSubscriber(5556))
    assert all(not isinstance(a, Subscribe) for a in actions[connect:])  # topics first


def test_each_resumed_session_connects_the_subscriber_anew() -> None:
    # after a server restart libzmq reconnects the SUB by itself, maybe before we
    # resumed: then it was refused, and libzmq does not try again
    core = ClientCore(subscriber_key="k" * 40)
    welcomed(core)
    logged_in(core)
    core.connection_lost()
    actions = welcomed(core, pub_port=6000)
    assert subscriber_actions(actions) == []
    (resume,) = [r for r in sent(actions) if isinstance(r, p.Resume)]
    assert resume.subscriber_key == "k" * 40
    started = core.received(session(resume.rid, epoch="run-2"))
    assert subscriber_actions(started) == [ConnectSubscriber(6000)]


def test_logging_out_or_losing_the_session_closes_the_subscriber() -> None:
    core = ClientCore()
    welcomed(core)
    logged_in(core)
    rid, _ = core.request(p.Logout(rid=0))
    assert subscriber_actions(core.received(p.encode(p.Done(rid=rid)))) == [DisconnectSubscriber()]
    logged_in(core)
    (resume,) = sent(core._resume())
    expired = p.Failure(rid=resume.rid, code="session_expired", message="log in again")
    assert subscriber_actions(core.received(p.encode(expired))) == [DisconnectSubscriber()]
