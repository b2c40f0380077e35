"""``emolens serve``: the REST + WebSocket app and the web page, with uvicorn."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import EmolensError, MissingExtra, needs_extra
from ..serve.guard import is_loopback
from .vision import add_precision

DEFAULT_PORT = 8000


def register(subparsers) -> None:
    from ..vision.detection_size import describe

    p = subparsers.add_parser(
        "serve", help="serve the REST/WebSocket API and the web page",
        description="Start the web service: POST /v1/predict, WS /v1/stream, GET /v1/models, GET /healthz, "
                    "the OpenAPI schema at /openapi.json and the web page at /. Faces are detected as by the CLI "
                    f"and the Python API: {describe()} (uploads are photos, WebSocket frames a stream).",
        )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    p.add_argument("--model", default="default", help="bundled model name, 'default', or a .safetensors path")
    p.add_argument("--detector", default=None, help="face detector (default: the recognizer's default)")
    p.add_argument("--backend", default="onnx", choices=("onnx", "torch"), help="classifier runtime")
    add_precision(p, "auto")
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads the model)")
    p.add_argument("--slots", dest="threads", type=int, default=1,
                   help="inference slots per process, each its own Recognizer (requests run side by side)")
    p.add_argument("--threads", dest="threads", type=int, help=argparse.SUPPRESS)   # the former name of --slots
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="uploads larger than this get 413")
    p.add_argument("--max-streams", type=int, default=64, help="concurrent WebSocket streams per process")
    p.add_argument("--max-message-mb", type=float, default=2.0,
                   help="largest WebSocket message (frame or text); larger ones close the stream (1009) unread")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web page origin (https://app.example.com) allowed to use the API and the stream, "
                        "besides the app's own page; repeatable; '*' allows any")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name answered besides localhost/127.0.0.1/[::1] (behind a proxy); repeatable; "
                        "'*' answers any")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                   help="seconds a client has to send a request's headers")
    p.add_argument("--body-timeout", type=float, default=60.0, metavar="S",
                   help="seconds a client has to send an upload's body (else 408)")
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="label a face 'uncertain' when its top probability is below P (default: off)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level")
    p.set_defaults(func=run)


def settings_from_args(args):
    from ..serve.config import ServeSettings

    for flag in ("max_upload_mb", "max_message_mb"):
        if getattr(args, flag) <= 0:
            raise EmolensError(f"--{flag.replace('_', '-')} must be positive")
    return ServeSettings(model=args.model, detector=args.detector, backend=args.backend,
                         precision=args.precision, host=args.host,
                         port=args.port, workers=args.workers, threads=args.threads,
                         max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_streams=args.max_streams,
                         max_frame_bytes=int(args.max_message_mb * 1024 * 1024),
                         allow_origins=args.allow_origin, allow_hosts=args.allow_host,
                         header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                         min_confidence=args.min_confidence, log_level=args.log_level)


def run(args) -> int:
    try:
        import uvicorn

        from ..serve.app import create_app
    except ModuleNotFoundError as e:
        raise MissingExtra(needs_extra(f"`emolens serve` ({e.name} is missing)", "serve")) from None
    from ..serve.config import ENV_VAR
    from ..serve.limits import uvicorn_options

    settings = settings_from_args(args)
    if not is_loopback(settings.host):
        print(f"emolens serve: listening on {settings.host}: the service is reachable from the network",
              file=sys.stderr)
    shown = "localhost" if settings.host in ("127.0.0.1", "::1") else settings.host
    print(f"emolens serve: http://{shown}:{settings.port}/  (API: /docs)", file=sys.stderr)
    options = uvicorn_options(settings)
    if settings.workers == 1:
        app = create_app(settings)  # a bad --model fails here, before the port is taken
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, **options)
        return 0
    # several processes: each worker builds its own app from the settings in the environment;
    # resolve the model once here so that a bad name is one clear error, not N tracebacks
    from ..runtime import resolve_weights

    resolve_weights(settings.model)
    os.environ[ENV_VAR] = settings.to_json()
    uvicorn.run("emolens.serve.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level=settings.log_level, **options)
    return 0
