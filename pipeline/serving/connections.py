"""How the server holds its connections: each has a deadline, their number a cap, and
SIGTERM ends the server within seconds, whatever the clients do.

uvicorn's own settings cover part of it; tried with raw-socket clients
(tests/test_serve.py), they do this and no more:

- ``timeout_keep_alive`` closes a connection idle *between* requests. One that connects
  and sends nothing, or half a request line, is held for ever.
- ``limit_concurrency`` answers 503 once a request's headers have arrived. It counts open
  connections, but closes none: 1,100 half-open connections were all held.
- ``h11_max_incomplete_event_size`` bounds the size of a request's headers (16 KB), not
  their time.
- ``timeout_graceful_shutdown`` bounds the wait for running requests after SIGTERM
  (by default there is none: a client sending its body a byte a second held the server
  through SIGTERM until SIGKILL).

What they leave out is here: :class:`BoundedH11` (uvicorn's h11 protocol) closes a
connection that has not sent its request's headers within ``header_timeout``, refuses
connections beyond ``max_connections`` with a 503 at once, and ends a connection whose
request body was not read in full once its response is sent (the client gets the
response, then EOF, instead of holding the connection by trickling the rest). The body's
own deadline is in the upload path (pipeline.serving.uploads.capped_receive).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("pipeline.serve")

DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
KEEP_ALIVE = 5.0  # uvicorn's default: seconds an idle connection waits for its next request
# Seconds a connection whose response went out before its body was read keeps reading
# (and dropping) what the client still sends, so the client reads its response instead
# of a reset; then it is closed.
LINGER = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open at once; beyond: 503, closed
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # connect (or last response) -> headers
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT  # SIGTERM -> running requests cancelled


def _busy_response(limit: int) -> bytes:
    body = json.dumps({"error": f"the server has {limit} connections open, its cap "
                       "(--max-connections); try again shortly"}).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"connection: close\r\nretry-after: 1\r\n"
            b"content-length: %d\r\n\r\n" % len(body)) + body


class BoundedH11(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a connection cap and an end to
    connections whose body was not read; ``limits`` is set by :func:`protocol_class`."""

    limits: ConnectionLimits = ConnectionLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection: %d open, the cap (--max-connections)",
                        self.limits.max_connections)
            transport.write(_busy_response(self.limits.max_connections))
            transport.close()
            return
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_deadline, self._linger):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.SEND_BODY:  # answered before the body was read
            self._end_after_response()
        else:
            self._arm_header_deadline()  # for the next request on this connection

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.limits.header_timeout,
                                                     self._headers_late)

    def _headers_late(self) -> None:
        # IDLE: the request line and headers are not all in yet (after them: SEND_BODY).
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("closed a connection without its request headers after %g s",
                      self.limits.header_timeout)
            self.transport.close()

    def _end_after_response(self) -> None:
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(LINGER, self.transport.close)


def protocol_class(limits: ConnectionLimits) -> type[BoundedH11]:
    """BoundedH11 with ``limits`` (uvicorn makes one protocol object per connection)."""
    return type("BoundedH11", (BoundedH11,), {"limits": limits})


def make_server(app, limits: ConnectionLimits, log_level: str = "warning") -> uvicorn.Server:
    """The uvicorn server of ``app`` with these limits (serve.py's and the tests')."""
    return uvicorn.Server(uvicorn.Config(
        app, http=protocol_class(limits), log_level=log_level, access_log=False,
        timeout_keep_alive=KEEP_ALIVE, timeout_graceful_shutdown=limits.shutdown_timeout,
        # What uvicorn itself counts (503 for a request beyond it): our cap already holds.
        limit_concurrency=None, backlog=max(128, limits.max_connections * 4)))


def listen(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket, so the address is known (and printed) before the server starts,
    and a client that connects as soon as it is printed waits instead of being refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock
