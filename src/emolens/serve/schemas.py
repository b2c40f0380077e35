"""Response shapes of the REST API (they make the OpenAPI schema at ``/openapi.json`` useful)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelInfo(BaseModel):
    name: str = Field(description="model name (bundled name or the weights file's stem)")
    version: str = Field(description="model version from its spec")
    backend: str | None = Field(None, description="onnx or torch")
    precision: str | None = Field(None, description="the classifier network it runs: float or int8")
    detector: str | None = Field(None, description="face detector")
    arch: str | None = None
    classes: list[str] = Field(default_factory=list, description="class names, in the model's order")
    input_size: int | None = None
    sha256: str | None = None
    model_config = {"extra": "allow", "protected_namespaces": ()}


class Face(BaseModel):
    face: int = Field(description="the face's number, from 1, in reading order (rows top to bottom, each left to "
                      "right), as in the CLI's table, CSV and JSON and on the web page")
    box: list[float] = Field(description="x1, y1, x2, y2 in image pixels")
    score: float = Field(description="detection confidence")
    label: str = Field(description="most probable expression")
    confidence: float = Field(description="probability of the label")
    probabilities: dict[str, float] = Field(description="class -> probability")
    landmarks: list[list[float]] | None = Field(None, description="5 points (eyes, nose, mouth corners)")
    track_id: int | None = Field(None, description="stable id across frames (streams only)")


class PredictResponse(BaseModel):
    model: ModelInfo
    width: int
    height: int
    faces: list[Face]
    timings_ms: dict[str, float] = Field(description="decode, queue, detect/classify (pipeline) and total")
    model_config = {"protected_namespaces": ()}


class ModelsResponse(BaseModel):
    loaded: ModelInfo
    available: list[str] = Field(description="bundled model names usable with --model")
    default: str


class Health(BaseModel):
    status: str
    model: str
    uptime_s: float
    pending: int
    streams: int


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
