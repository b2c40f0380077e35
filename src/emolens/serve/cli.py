"""``emolens serve``: the REST + WebSocket app and the web page, with uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from ..errors import EmolensError

DEFAULT_PORT = 8000


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the REST/WebSocket API and the web page",
        description="Start the web service: POST /v1/predict, WS /v1/stream, GET /v1/models, GET /healthz, "
                    "the OpenAPI schema at /openapi.json and the web page at /.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    p.add_argument("--model", default="default", help="bundled model name, 'default', or a .safetensors path")
    p.add_argument("--detector", default=None, help="face detector (default: the recognizer's default)")
    p.add_argument("--backend", default="onnx", choices=("onnx", "torch"), help="classifier runtime")
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads the model)")
    p.add_argument("--threads", type=int, default=1, help="inference slots per process")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="uploads larger than this get 413")
    p.add_argument("--max-streams", type=int, default=64, help="concurrent WebSocket streams per process")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)


def settings_from_args(args):
    from .config import ServeSettings

    if args.max_upload_mb <= 0:
        raise EmolensError("--max-upload-mb must be positive")
    return ServeSettings(model=args.model, detector=args.detector, backend=args.backend, host=args.host,
                         port=args.port, workers=args.workers, threads=args.threads,
                         max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_streams=args.max_streams,
                         log_level=args.log_level)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    try:
        import uvicorn

        from .app import create_app
    except ModuleNotFoundError as e:
        raise EmolensError(f"emolens serve needs the 'serve' extra ({e.name} is missing): "
                           "pip install 'emolens[serve]'") from None
    from .config import ENV_VAR

    settings = settings_from_args(args)
    if not is_loopback(settings.host):
        print(f"emolens serve: listening on {settings.host}: the service is reachable from the network",
              file=sys.stderr)
    shown = "localhost" if settings.host in ("127.0.0.1", "::1") else settings.host
    print(f"emolens serve: http://{shown}:{settings.port}/  (API schema: /openapi.json)", file=sys.stderr)
    if settings.workers == 1:
        app = create_app(settings)  # a bad --model fails here, before the port is taken
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
        return 0
    # several processes: each worker builds its own app from the settings in the environment;
    # resolve the model once here so that a bad name is one clear error, not N tracebacks
    from ..runtime import resolve_weights

    resolve_weights(settings.model)
    os.environ[ENV_VAR] = settings.to_json()
    uvicorn.run("emolens.serve.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level=settings.log_level)
    return 0
