"""The ASGI app: REST upload, WebSocket stream, model list, health, the offline web page.

    POST /v1/predict    multipart field ``file`` (JPEG/PNG/WebP/GIF/TIFF/BMP) -> faces as JSON
    WS   /v1/stream     binary frames (JPEG/PNG/WebP) in, one JSON reply per processed frame out
    GET  /v1/models     the loaded model and the bundled ones
    GET  /healthz       liveness
    GET  /openapi.json  the OpenAPI schema; GET /docs its Swagger UI (assets served locally)
    GET  /              the web page (webcam, upload, timeline, voice assistant)

Who may call it (Host names, origins) is decided by :mod:`.guard`; sizes and timeouts by
:mod:`.limits`.

Build it with :func:`create_app` (tests, one process) or let uvicorn call
:func:`app_from_env` in each worker process (``emolens serve --workers N``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from fastapi import FastAPI, File, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from ..version import __version__
from ..errors import EmolensError
from .config import ServeSettings
from .engine import Engine, Overloaded
from .guard import OriginHostGuard
from .imageio import ACCEPTED_TEXT, ImageRejected, decode_upload, public_message
from .limits import BodySizeLimit
from .schemas import ErrorResponse, Health, ModelsResponse, PredictResponse
from .stream import StreamHandler

log = logging.getLogger("emolens.serve")
STATIC = Path(__file__).parent / "static"

ERROR_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type",
               422: "unprocessable", 500: "internal_error", 503: "overloaded"}


def error_response(status: int, message: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"status": status, "code": code or ERROR_CODES.get(status, "error"),
                      "message": public_message(message)}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(settings: ServeSettings | None = None, engine: Engine | None = None) -> FastAPI:
    """The app with its inference engine loaded now (a bad model fails here, not at the first request)."""
    settings = settings or ServeSettings()
    engine = engine or Engine(settings)
    streams = StreamHandler(engine, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await streams.close_all()
        engine.close()

    app = FastAPIOffline(  # FastAPI, with /docs served from local assets instead of a CDN
        title="emolens", version=__version__, lifespan=lifespan,
        description="Facial expression recognition: upload an image or stream webcam frames, get faces, "
                    "expression labels and probabilities. Runs offline on a CPU.\n\n"
                    "WebSocket `/v1/stream` (not listed below, as OpenAPI has no WebSockets): send each frame "
                    "as one binary message (JPEG, PNG or WebP); each processed frame is answered with "
                    "`{\"type\": \"result\", \"seq\", \"faces\" (with track_id), \"dropped\", ...}`; "
                    "a frame arriving while an older one waits replaces it. See docs/serve.md.",
        docs_url="/docs", redoc_url=None, openapi_url="/openapi.json",
        swagger_ui_parameters={"validatorUrl": None},  # no call to the online validator
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.streams = streams
    # the last added runs first: Host/Origin checks, then CORS, then the body limits
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes, paths=("/v1/predict",),
                       timeout_s=settings.body_timeout_s)
    if settings.allow_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.allow_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    app.add_middleware(OriginHostGuard, bind_host=settings.host, allow_hosts=settings.allow_hosts,
                       allow_origins=settings.allow_origins)

    errors = {403: {"model": ErrorResponse, "description": "a request from another web page's origin"},
              408: {"model": ErrorResponse, "description": "the upload did not arrive in time"},
              413: {"model": ErrorResponse, "description": "upload larger than the limit"},
              415: {"model": ErrorResponse, "description": f"not {ACCEPTED_TEXT}"},
              422: {"model": ErrorResponse, "description": "corrupt image or missing `file` field"},
              503: {"model": ErrorResponse, "description": "too many requests waiting"}}

    # ---- errors: always JSON, always {"error": {status, code, message}} ----
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", "invalid"))
        return error_response(422, "; ".join(parts) or "invalid request", code="invalid_request")

    @app.exception_handler(ImageRejected)
    async def _rejected(request: Request, exc: ImageRejected):
        return error_response(exc.status, exc.message, code=exc.code)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded):
        return error_response(503, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(EmolensError)
    async def _emolens_error(request: Request, exc: EmolensError):
        return error_response(422, str(exc), code="recognition_error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")

    # ---- REST ----
    @app.post("/v1/predict", response_model=PredictResponse, responses=errors, tags=["recognition"],
              summary="Recognise the faces in an uploaded image")
    async def predict(file: UploadFile = File(..., description="JPEG, PNG, WebP, GIF (first frame), TIFF or BMP")):
        t0 = time.perf_counter()
        if file.size is not None and file.size > settings.max_upload_bytes:
            raise ImageRejected(413, "payload_too_large",
                                f"upload is {file.size} bytes; the limit is {settings.max_upload_bytes}")
        data = await file.read()
        if len(data) > settings.max_upload_bytes:
            raise ImageRejected(413, "payload_too_large",
                                f"upload is {len(data)} bytes; the limit is {settings.max_upload_bytes}")
        image = await engine.offload(decode_upload, data, settings.max_pixels)
        t1 = time.perf_counter()
        result, queue_ms = await engine.predict_timed(image)
        engine.served += 1
        out = result.to_dict()
        timings = {"decode": round((t1 - t0) * 1000, 3), "queue": round(queue_ms, 3)}
        timings.update({f"pipeline_{k}" if k == "total" else k: v for k, v in out["timings_ms"].items()})
        timings["total"] = round((time.perf_counter() - t0) * 1000, 3)
        return {"model": engine.info, "width": out["width"] or image.shape[1],
                "height": out["height"] or image.shape[0], "faces": out["faces"], "timings_ms": timings}

    @app.get("/v1/models", response_model=ModelsResponse, tags=["models"], summary="Loaded and bundled models")
    async def models():
        from ..weights import DEFAULT_MODEL, bundled_names

        return {"loaded": engine.info, "available": bundled_names(), "default": DEFAULT_MODEL}

    @app.get("/healthz", response_model=Health, tags=["service"], summary="Liveness and load")
    async def healthz():
        return {"status": "ok", "model": engine.info.get("name", ""), "uptime_s": round(time.time() - engine.started, 1),
                "pending": engine.pending, "streams": streams.active}

    # ---- WebSocket stream ----
    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        await streams.handle(ws)

    # ---- the page ----
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: settings come from ``EMOLENS_SERVE_SETTINGS``."""
    return create_app(ServeSettings.from_env())

