"""Request body limit as plain ASGI middleware: the 413 comes before a large upload is parsed or spooled."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException

#: Room for the multipart envelope around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
#: A declared body up to this many times the limit is read and thrown away before the 413, so that an
#: ordinary client still sending its upload gets the answer instead of a reset connection.
DRAIN_FACTOR = 4


class BodySizeLimit:
    def __init__(self, app, limit: int, paths: tuple[str, ...] = ("/",)):
        self.app = app
        self.limit = limit
        self.body_limit = limit + MULTIPART_OVERHEAD
        self.paths = paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") \
                or not scope["path"].startswith(self.paths):
            return await self.app(scope, receive, send)
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
