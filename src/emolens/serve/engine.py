"""Inference for the web service: a small pool of Recognizers run off the event loop.

Each slot owns its own :class:`emolens.api.Recognizer` (detectors are not all thread-safe), and
a request waits for a free slot in arrival order. The pool is bounded: when more than
``max_pending`` uploads are waiting the service answers 503 instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .config import ServeSettings


class Overloaded(Exception):
    """Too many requests are already waiting for an inference slot."""


def make_recognizer(settings: ServeSettings):
    """The real pipeline, built from the settings (imported here so the app module stays light)."""
    from ..api import Recognizer

    kwargs: dict[str, Any] = {"model": settings.model, "backend": settings.backend, "precision": settings.precision}
    if settings.detector:
        kwargs["detector"] = settings.detector
    if settings.min_confidence is not None:
        kwargs["min_confidence"] = settings.min_confidence
    return Recognizer(**kwargs)


class Engine:
    """``await engine.run(fn, *args)`` runs ``fn(recognizer, *args)`` in a worker thread on a free slot."""

    def __init__(self, settings: ServeSettings, factory: Callable[[ServeSettings], Any] = make_recognizer):
        self.settings = settings
        self.recognizers = [factory(settings) for _ in range(settings.threads)]
        self.info = self.recognizers[0].info()
        self.executor = ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="emolens-infer")
        self.decoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="emolens-decode")
        self._free: asyncio.Queue | None = None
        self.pending = 0
        self.started = time.time()
        self.served = 0
        self.errors = 0

    def _queue(self) -> asyncio.Queue:
        # created lazily, inside the running loop (uvicorn and the test client each bring their own)
        if self._free is None:
            self._free = asyncio.Queue()
            for rec in self.recognizers:
                self._free.put_nowait(rec)
        return self._free

    async def run(self, fn: Callable, *args, bounded: bool = True):
        return (await self.run_timed(fn, *args, bounded=bounded))[0]

    async def run_timed(self, fn: Callable, *args, bounded: bool = True) -> tuple[Any, float]:
        """``(fn(recognizer, *args), milliseconds spent waiting for a slot)``."""
        if bounded and self.pending >= self.settings.max_pending:
            raise Overloaded(f"{self.pending} requests already waiting; try again shortly")
        free = self._queue()
        t0 = time.perf_counter()
        self.pending += 1
        try:
            rec = await free.get()
        finally:
            self.pending -= 1
        waited = (time.perf_counter() - t0) * 1000
        loop = asyncio.get_running_loop()
        # the slot goes back when the thread is done, not when the awaiting task is (a client that
        # hangs up cancels the task, but the recognizer stays busy until its frame is finished)
        future = self.executor.submit(fn, rec, *args)
        future.add_done_callback(lambda _: _release(loop, free, rec))
        return await asyncio.wrap_future(future), waited

    async def offload(self, fn: Callable, *args):
        """CPU work that needs no recognizer (decoding) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.decoder, fn, *args)

    async def predict(self, image: np.ndarray):
        return await self.run(_predict, image)

    async def predict_timed(self, image: np.ndarray):
        return await self.run_timed(_predict, image)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.decoder.shutdown(wait=False, cancel_futures=True)


def _release(loop: asyncio.AbstractEventLoop, free: asyncio.Queue, rec) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is gone: the service is shutting down
        loop.call_soon_threadsafe(free.put_nowait, rec)


def _predict(rec, image: np.ndarray):
    return rec.predict(image)
