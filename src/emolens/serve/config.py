"""Settings of the web service: one dataclass, filled by ``emolens serve`` flags or the environment.

Multi-process serving (``--workers N``) starts each worker from an import string, so the
settings travel to the workers as JSON in ``EMOLENS_SERVE_SETTINGS``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

from ..errors import EmolensError

ENV_VAR = "EMOLENS_SERVE_SETTINGS"
MB = 1024 * 1024


@dataclass
class ServeSettings:
    model: str = "default"               # bundled name, "default" or a .safetensors path
    detector: str | None = None          # None: the Recognizer's default detector
    backend: str = "onnx"                # onnx | torch
    precision: str = "auto"              # auto | float | int8 (emolens.runtime.quantize)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1                     # server processes
    threads: int = 1                     # inference slots (one Recognizer each) per process
    max_upload_bytes: int = 10 * MB      # larger uploads get 413
    max_frame_bytes: int = 2 * MB        # larger WebSocket messages (binary or text) are refused (1009)
    max_pixels: int = 40_000_000         # decoded images larger than this get 413
    max_pending: int = 256               # uploads waiting for a slot beyond this get 503
    max_streams: int = 64                # concurrent WebSocket streams; more are refused (1013)
    send_timeout_s: float = 5.0          # a stream client that does not take a reply in time is dropped
    header_timeout_s: float = 10.0       # a request's headers must arrive within this (else the connection closes)
    body_timeout_s: float = 60.0         # an upload's body must arrive within this (else 408)
    # web pages allowed to use the API from the browser besides the app's own page ("*": any, or none)
    allow_origins: list[str] = field(default_factory=list)
    # Host header names answered besides loopback ones (bound to loopback); others get 421 ("*": any)
    allow_hosts: list[str] = field(default_factory=list)
    min_confidence: float | None = None  # faces below this top probability are labelled "uncertain"
    log_level: str = "info"

    def __post_init__(self):
        for name in ("port", "workers", "threads", "max_upload_bytes", "max_frame_bytes", "max_pixels",
                     "max_pending", "max_streams"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "port" else 1):
                raise EmolensError(f"serve: {name} must be a positive integer, got {value!r}")
        for name in ("send_timeout_s", "header_timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise EmolensError(f"serve: {name} must be positive, got {value!r}")
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise EmolensError(f"serve: min_confidence must lie in [0, 1], got {self.min_confidence!r}")
        self.allow_origins = [o.rstrip("/") for o in self.allow_origins]
        self.allow_hosts = [h.lower() for h in self.allow_hosts]

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
