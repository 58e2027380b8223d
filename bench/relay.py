"""The baseline: the least a ZeroMQ chat server can do, as the practical limit of the stack.

A ROUTER forwards between DEALERs by routing id and a PUB fans room messages
out; no persistence, no sessions, no checks, no decoding. It answers every
request with an empty ack frame, so that the load generators run the same
closed loop (send, wait for the ack) against it as against our server, and it
drains its socket in batches the way our server's loop does.

Its wire, for the load generators (bench/wire.py):

- a client's DEALER sets its routing id to its user name and sends
  ``[destination, payload]``;
- destination ``b""``: nothing is forwarded (hello, heartbeat);
- destination starting with ``room:`` (a :func:`libimchat.protocol.room_topic`):
  ``[destination, payload]`` is published;
- any other destination: ``[payload]`` goes to the DEALER of that routing id;
- then the sender gets ``[b""]``, the ack.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import zmq

BATCH = 512
ACK = b""
ROOM_PREFIX = b"room:"


def serve(conn: Any, host: str, port: int, pub_port: int) -> None:
    """Run the relay until SIGTERM or a message on ``conn``; sends ``(port, pub_port)`` first."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ctx = zmq.Context()
    # as our server does (server.py, _let_the_loop_finish_its_turn): libzmq's threads
    # under SCHED_BATCH do not preempt the forwarding loop; the relay gains about as much
    ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_BATCH)
    router = ctx.socket(zmq.ROUTER)
    publisher = ctx.socket(zmq.PUB)
    for sock in (router, publisher):
        sock.setsockopt(zmq.LINGER, 0)
        # the kernel's accept queue, not libzmq's default of 100: a storm of connections
        # otherwise waits out SYN retransmissions (1 s, 3 s, 7 s...) behind a full queue
        sock.setsockopt(zmq.BACKLOG, 4096)
    router.bind(f"tcp://{host}:{port or '*'}")
    publisher.bind(f"tcp://{host}:{pub_port or '*'}")
    ports = [
        int(s.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1]) for s in (router, publisher)
    ]
    conn.send(tuple(ports))
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    try:
        while not conn.poll():
            if not poller.poll(100):
                continue
            for _ in range(BATCH):
                try:
                    sender, destination, payload = router.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except ValueError:  # not three frames: not ours to relay
                    continue
                if destination.startswith(ROOM_PREFIX):
                    publisher.send_multipart([destination, payload], zmq.NOBLOCK)
                elif destination:
                    router.send_multipart([destination, payload], zmq.NOBLOCK)
                router.send_multipart([sender, ACK], zmq.NOBLOCK)
    except KeyboardInterrupt:
        pass
    finally:
        router.close(0)
        publisher.close(0)
        ctx.term()
