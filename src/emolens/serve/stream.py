"""The WebSocket stream: frames in, faces with track ids out, the newest frame only.

Protocol (``/v1/stream``):

- the server greets with ``{"type": "hello", "model": {...}, "max_frame_bytes": N}``;
- the client sends each frame as one *binary* message holding a JPEG, PNG or WebP image;
- the server answers each frame it processes with ``{"type": "result", "seq": i, "faces": [...],
  "width", "height", "timings_ms", "dropped": D}``, where ``seq`` numbers the frames received
  (from 0) and ``dropped`` counts the frames skipped so far;
- a frame that arrives while an older one waits replaces it (the older one is dropped, never
  queued), so a client sending faster than the server recognises sees fresh answers, not a
  growing lag; a well-behaved client sends its next frame when the previous answer arrives;
- a frame that cannot be decoded gets ``{"type": "error", "seq": i, "code", "message"}`` and
  the stream goes on; text messages ``{"type": "reset"}`` (forget tracks) and
  ``{"type": "ping"}`` (answered by ``pong``) are understood;
- a message (binary or text) over ``max_frame_bytes`` closes the stream with 1009 (uvicorn's
  ``ws_max_size`` is set to the same limit, so it is refused from its frame header, never read
  whole), a full server refuses new streams with 1013, and a client that does not take its
  replies within ``send_timeout_s`` is dropped;
- the handshake needs an allowed ``Origin`` (see :mod:`.guard`), else 403.

Every connection has its own reader, worker and tracker; one slow or vanished client holds at
most one inference slot for one frame and never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .config import ServeSettings
from .engine import Engine
from .imageio import ImageRejected, decode_upload, public_message

log = logging.getLogger("emolens.serve.stream")


#: Seconds for an old frame's probabilities to weigh half (steadier labels on a live stream).
STREAM_HALF_LIFE = 0.5


def make_tracker(rec) -> Any:
    """A fresh tracker for one stream, made by the recogniser with its settings: stable ids,
    probabilities smoothed over time, the detector run every few frames (the faces carried between)."""
    return rec.tracker(half_life=STREAM_HALF_LIFE)


def track_frame(rec, tracker, image):
    """Recognise one frame and give its faces stable track ids (runs in an inference thread, on
    the pool's recogniser ``rec``, which has the same settings as the one that made ``tracker``)."""
    return tracker.update(image, timestamp=time.monotonic(), pipeline=rec.pipeline)


class _Stream:
    def __init__(self, ws: WebSocket, engine: Engine, settings: ServeSettings):
        self.ws = ws
        self.engine = engine
        self.settings = settings
        self.latest: tuple[int, bytes, float] | None = None
        self.ready = asyncio.Event()
        self.closed = False
        self.received = 0
        self.dropped = 0
        self.tracker = None
        self.close_code = 1000

    async def reader(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data, text = message.get("bytes"), message.get("text")
            if len(data if data is not None else (text or "").encode()) > self.settings.max_frame_bytes:
                self.close_code = 1009
                return
            if data is not None:
                seq = self.received
                self.received += 1
                if self.latest is not None:
                    self.dropped += 1  # the waiting frame is stale now: replace it, do not queue
                self.latest = (seq, data, time.perf_counter())
                self.ready.set()
                continue
            await self.control(text or "")

    async def control(self, text: str) -> None:
        try:
            msg = json.loads(text)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except ValueError:
            kind = None
        if kind == "ping":
            await self.send({"type": "pong", "t": msg.get("t")})
        elif kind == "reset":
            self.tracker = None
            await self.send({"type": "reset"})
        else:
            await self.send({"type": "error", "code": "bad_message",
                             "message": "send frames as binary messages; text may be {\"type\": \"ping\"|\"reset\"}"})

    async def worker(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            if self.latest is None:
                continue
            seq, data, arrived = self.latest
            self.latest = None
            try:
                image = await self.engine.offload(decode_upload, data, self.settings.max_pixels)
            except ImageRejected as e:
                await self.send({"type": "error", "seq": seq, "code": e.code, "message": e.message})
                continue
            if self.tracker is None:
                self.tracker = make_tracker(self.engine.recognizers[0])
            t0 = time.perf_counter()
            try:
                result, queue_ms = await self.engine.run_timed(track_frame, self.tracker, image, bounded=False)
            except Exception as e:  # a failing frame must not end the stream
                log.exception("stream frame %d failed", seq)
                await self.send({"type": "error", "seq": seq, "code": "recognition_error",
                                 "message": public_message(str(e))})
                continue
            out = result.to_dict()
            timings = {k: v for k, v in out["timings_ms"].items()}
            timings["queue"] = round(queue_ms, 3)
            timings["server"] = round((time.perf_counter() - arrived) * 1000, 3)
            timings["inference"] = round((time.perf_counter() - t0) * 1000 - queue_ms, 3)
            self.engine.served += 1
            await self.send({"type": "result", "seq": seq, "received": self.received, "dropped": self.dropped,
                             "width": out["width"] or int(image.shape[1]), "height": out["height"] or int(image.shape[0]),
                             "faces": out["faces"], "timings_ms": timings})

    async def send(self, payload: dict) -> None:
        # a client that stops reading fills its socket buffers; it is cut off rather than waited for
        try:
            await asyncio.wait_for(self.ws.send_text(json.dumps(payload)), timeout=self.settings.send_timeout_s)
        except asyncio.TimeoutError:
            self.close_code = 1008
            raise _Gone() from None
        except (WebSocketDisconnect, RuntimeError, ConnectionError) as e:
            raise _Gone() from e


class _Gone(Exception):
    """The client left or stopped reading."""


class StreamHandler:
    def __init__(self, engine: Engine, settings: ServeSettings):
        self.engine = engine
        self.settings = settings
        self.active = 0
        self.tasks: set[asyncio.Task] = set()

    async def handle(self, ws: WebSocket) -> None:
        await ws.accept()
        if self.active >= self.settings.max_streams:
            await ws.close(code=1013, reason="server busy: too many streams")
            return
        self.active += 1
        stream = _Stream(ws, self.engine, self.settings)
        try:
            await stream.send({"type": "hello", "model": self.engine.info,
                               "max_frame_bytes": self.settings.max_frame_bytes})
            reader = asyncio.create_task(stream.reader())
            worker = asyncio.create_task(stream.worker())
            self.tasks.update((reader, worker))
            done, pending = await asyncio.wait({reader, worker}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, (_Gone, WebSocketDisconnect)):
                    log.warning("stream ended by %r", exc)
            self.tasks.difference_update((reader, worker))
        except (_Gone, WebSocketDisconnect):
            pass
        finally:
            self.active -= 1
            if ws.client_state == WebSocketState.CONNECTED and ws.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=stream.close_code), timeout=1.0)

    async def close_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
