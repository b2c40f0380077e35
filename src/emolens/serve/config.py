"""Settings of the web service: one dataclass, filled by ``emolens serve`` flags or the environment.

Multi-process serving (``--workers N``) starts each worker from an import string, so the
settings travel to the workers as JSON in ``EMOLENS_SERVE_SETTINGS``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from ..errors import EmolensError

ENV_VAR = "EMOLENS_SERVE_SETTINGS"
MB = 1024 * 1024


@dataclass
class ServeSettings:
    model: str = "default"               # bundled name, "default" or a .safetensors path
    detector: str | None = None          # None: the Recognizer's default detector
    backend: str = "onnx"                # onnx | torch
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1                     # server processes
    threads: int = 1                     # inference slots (one Recognizer each) per process
    max_upload_bytes: int = 10 * MB      # larger uploads get 413
    max_frame_bytes: int = 2 * MB        # larger WebSocket frames close the stream (1009)
    max_pixels: int = 40_000_000         # decoded images larger than this get 413
    max_pending: int = 256               # uploads waiting for a slot beyond this get 503
    max_streams: int = 64                # concurrent WebSocket streams; more are refused (1013)
    send_timeout_s: float = 5.0          # a stream client that does not take a reply in time is dropped
    log_level: str = "info"

    def __post_init__(self):
        for name in ("port", "workers", "threads", "max_upload_bytes", "max_frame_bytes", "max_pixels",
                     "max_pending", "max_streams"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "port" else 1):
                raise EmolensError(f"serve: {name} must be a positive integer, got {value!r}")
        if self.send_timeout_s <= 0:
            raise EmolensError(f"serve: send_timeout_s must be positive, got {self.send_timeout_s!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(ENV_VAR)
        return cls.from_json(text) if text else cls()
