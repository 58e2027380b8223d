"""Which of a load process's thousands of sockets have something to read, at O(ready) cost.

``zmq.Poller`` asks every registered socket for its state on every call: with
2,000 idle clients (4,000 sockets) in a load process, 89% of the process's
CPU went to ``Poller.poll`` (py-spy, connections scenario), and the load,
not the server, became what the figures measured. This watches each
socket's notification descriptor (``zmq.FD``) with epoll instead, so a call
costs what is ready, not what is open.

The descriptor is a signal, not a level: it fires when a socket's state may
have changed and is cleared by whichever call on the socket next processes
libzmq's commands, a send included. So a socket is reported only when
``zmq.EVENTS`` says it holds a message, callers read it until ``zmq.Again``,
and after sending on a socket they call :meth:`sent` so that a reply that
arrived meanwhile is not left without a signal.
"""

from __future__ import annotations

import select
from typing import Any

import zmq


class ReadySockets:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._by_fd: dict[int, zmq.Socket[Any]] = {}
        self._fd_of: dict[zmq.Socket[Any], int] = {}
        self._unsignalled: list[zmq.Socket[Any]] = []

    def add(self, sock: zmq.Socket[Any]) -> None:
        fd = sock.getsockopt(zmq.FD)
        self._by_fd[fd] = sock
        self._fd_of[sock] = fd
        self._epoll.register(fd, select.EPOLLIN)
        self.sent(sock)  # it may hold messages already

    def remove(self, sock: zmq.Socket[Any]) -> None:
        """Stop watching ``sock`` (before closing it: a closed socket's descriptor is reused)."""
        fd = self._fd_of.pop(sock)
        del self._by_fd[fd]
        self._epoll.unregister(fd)
        self._unsignalled = [waiting for waiting in self._unsignalled if waiting is not sock]

    def sent(self, sock: zmq.Socket[Any]) -> None:
        """A call on ``sock`` may have taken the signal of a message that arrived: look now."""
        if sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._unsignalled.append(sock)

    def wait(self, timeout: float) -> list[zmq.Socket[Any]]:
        """The sockets holding messages (each once), waiting up to ``timeout`` s for one.

        Handling one may close another that comes later in the list: callers
        skip the sockets they no longer hold.
        """
        ready = dict.fromkeys(self._unsignalled)
        self._unsignalled = []
        for fd, _ in self._epoll.poll(0 if ready else timeout):
            sock = self._by_fd.get(fd)
            if sock is not None and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                ready[sock] = None
        return list(ready)

    def close(self) -> None:
        self._epoll.close()
