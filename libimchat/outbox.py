"""What the server sends its peers, and what waits for one that reads slower than that.

libzmq queues at most :data:`PEER_QUEUE` messages for each peer of the ROUTER
socket, so that what a client asks for and never reads (say pages of up to
512 KiB) cannot pile up there. What finds that queue full waits here, in
order, and goes out as the peer reads. A peer whose waiting messages would
pass :data:`MAX_WAITING_BYTES`, or that takes none of them for
:data:`MAX_STALL` seconds, does not read: they are dropped, and the runner
ends its session. So is the peer with the most waiting when all of them
together would pass :data:`MAX_TOTAL_BYTES` (many connections that do not
read). A client that was only slow finds its session gone at its next
request or heartbeat, resumes, and resends what is still unanswered.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import zmq

log = logging.getLogger(__name__)

# messages libzmq holds for one peer (its default is 1,000: 500 MiB of large pages)
PEER_QUEUE = 50
# a client that sends 3,000 messages of 8,000 characters at once has ~20 MB of
# answers waiting at its peak (tests/test_async.py): three times that, and more
MAX_WAITING_BYTES = 64 << 20
MAX_TOTAL_BYTES = 512 << 20
MAX_STALL = 30.0
# what a waiting message costs in memory besides its bytes (its list, bytes objects
# and deque slot), so that a flood of small ones counts for what it holds
MESSAGE_OVERHEAD = 256

# Messages go out as single-frame sends with plain int flags: send_multipart checks
# every frame and combines its enum flags per frame, 2.6 us a reply against 1.3 us
# (measured here; a direct message is two replies). A frame that fails after the
# first is dropped by libzmq as send_multipart's would be.
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)


def send_frames(sock: zmq.Socket[bytes], frames: list[bytes]) -> None:
    """``sock.send_multipart(frames, zmq.NOBLOCK)``, at half its cost.

    Raises:
        zmq.Again: no room for it now.
        zmq.ZMQError: the peer is gone (a ROUTER with ``ROUTER_MANDATORY``).
    """
    send = sock.send
    for frame in frames[:-1]:
        send(frame, _MORE)
    send(frames[-1], _LAST)


@dataclass
class _Waiting:
    since: float  # when the peer last took one of them (monotonic seconds)
    messages: deque[tuple[list[bytes], int]] = field(default_factory=deque)  # with sizes
    size: int = 0  # their bytes and MESSAGE_OVERHEAD each
    # some were dropped: the peer does not read, and is told by losing its session
    overflowed: bool = False


class Outbox:
    """The ROUTER socket's sends, in order for each peer, none lost to a full queue.

    Args:
        router: a ROUTER socket with ``ROUTER_MANDATORY`` and ``SNDHWM`` =
            :data:`PEER_QUEUE` (a full queue raises ``zmq.Again``).
    """

    def __init__(
        self,
        router: zmq.Socket[bytes],
        *,
        max_bytes: int = MAX_WAITING_BYTES,
        max_total: int = MAX_TOTAL_BYTES,
        max_stall: float = MAX_STALL,
    ) -> None:
        self._router = router
        self._waiting: dict[bytes, _Waiting] = {}
        self._total = 0  # the sizes of all that waits
        self.max_bytes = max_bytes
        self.max_total = max_total
        self.max_stall = max_stall

    def __bool__(self) -> bool:
        """Whether something waits for a peer (the runner then comes back soon)."""
        return bool(self._waiting)

    def send(self, frames: list[bytes], now: float) -> None:
        """Send ``[peer, *message]`` now, or after what already waits for that peer."""
        peer = frames[0]
        waiting = self._waiting.get(peer)
        if waiting is None:
            try:
                send_frames(self._router, frames)
                return
            except zmq.Again:
                waiting = self._waiting[peer] = _Waiting(since=now)
            except zmq.ZMQError as exc:  # gone (EHOSTUNREACH)
                log.debug("dropped a message to a peer: %s", exc)
                return
        if waiting.overflowed:
            return
        size = sum(map(len, frames)) + MESSAGE_OVERHEAD
        waiting.messages.append((frames, size))
        waiting.size += size
        self._total += size
        if waiting.size > self.max_bytes:
            self._drop(waiting)
        if self._total > self.max_total:
            self._drop(max(self._waiting.values(), key=lambda w: w.size))

    def flush(self, now: float) -> list[bytes]:
        """Send what the peers now have room for; returns the peers that do not read,
        whose messages are dropped."""
        not_reading = []
        for peer, waiting in list(self._waiting.items()):
            while waiting.messages:
                frames, size = waiting.messages[0]
                try:
                    send_frames(self._router, frames)
                except zmq.Again:
                    break
                except zmq.ZMQError:  # gone: nothing will reach it
                    self._drop(waiting)
                    break
                waiting.messages.popleft()
                waiting.size -= size
                self._total -= size
                waiting.since = now
            if waiting.messages and now - waiting.since > self.max_stall:
                self._drop(waiting)
            if waiting.overflowed:
                not_reading.append(peer)
            if not waiting.messages:
                del self._waiting[peer]
        return not_reading

    def _drop(self, waiting: _Waiting) -> None:
        log.info("a peer does not read: dropped %d bytes that waited", waiting.size)
        self._total -= waiting.size
        waiting.messages.clear()
        waiting.size = 0
        waiting.overflowed = True
