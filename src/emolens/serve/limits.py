"""Limits that hold before anything large or slow is buffered.

- :class:`BodySizeLimit` (ASGI middleware): the 413 comes before a large upload is parsed or
  spooled, and the whole body must arrive within ``timeout_s`` (else 408).
- :class:`HeaderTimeoutH11Protocol` (uvicorn's h11 protocol plus one timer): a request's headers
  must arrive within ``header_timeout_s`` of the connection (or of the previous answer on a
  keep-alive connection), else the connection is closed; uvicorn itself has no such timeout, so
  a client sending one header line every few seconds would otherwise hold its connection forever.
- :func:`uvicorn_options`: the uvicorn settings made from :class:`ServeSettings`, used by
  ``emolens serve`` and :func:`emolens.serve.background.serve_in_thread` alike; among them
  ``ws_max_size``, so that a WebSocket message over ``max_frame_bytes`` (text or binary) is
  refused from its frame header (close 1009) instead of being read whole first.
"""

from __future__ import annotations

import asyncio
import functools
import json

from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Room for the multipart envelope around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
#: A declared body up to this many times the limit is read and thrown away before the 413, so that an
#: ordinary client still sending its upload gets the answer instead of a reset connection.
DRAIN_FACTOR = 4


class BodySizeLimit:
    def __init__(self, app, limit: int, paths: tuple[str, ...] = ("/",), timeout_s: float = 60.0):
        self.app = app
        self.limit = limit
        self.body_limit = limit + MULTIPART_OVERHEAD
        self.paths = paths
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") \
                or not scope["path"].startswith(self.paths):
            return await self.app(scope, receive, send)
        receive = self._deadline(receive)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > self.body_limit:
            if declared <= DRAIN_FACTOR * self.body_limit:
                await self._drain(receive)
            return await self._reject(send, f"upload is {declared} bytes; the limit is {self.limit}")

        seen = 0
        limit = self.body_limit

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI passes an HTTPException from body parsing through to the error handlers
                    raise HTTPException(413, f"upload is larger than the limit of {self.limit} bytes")
            return message

        await self.app(scope, counting_receive, send)

    def _deadline(self, receive):
        """``receive`` that raises a 408 once the body has taken longer than ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s

        async def timed_receive():
            try:
                return await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.timeout_s:g} s",
                                    headers={"Connection": "close"}) from None

        return timed_receive

    @staticmethod
    async def _drain(receive) -> None:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    @staticmethod
    async def _reject(send, message: str) -> None:
        body = json.dumps({"error": {"status": 413, "code": "payload_too_large", "message": message}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    def __init__(self, *args, header_timeout_s: float = 10.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:          # a request's headers are complete
            self._disarm()

    def handle_websocket_upgrade(self, event) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():   # waiting for the next request
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.logger.info("closed a connection whose request headers took over %g s", self.header_timeout_s)
            self.transport.close()


def uvicorn_options(settings) -> dict:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that enforce the service's limits."""
    return {
        # the protocol with a header deadline (a partial of a module-level class: picklable for --workers)
        "http": functools.partial(HeaderTimeoutH11Protocol, header_timeout_s=settings.header_timeout_s),
        "ws_max_size": settings.max_frame_bytes,   # refused from the frame header: never buffered whole
        "h11_max_incomplete_event_size": 16 * 1024,  # request line + headers
        "timeout_keep_alive": 5,                  # idle keep-alive connections close after 5 s
    }
