"""The Python facade: ``Recognizer(model=..., detector=...).predict(image)``.

    >>> from emolens import Recognizer
    >>> rec = Recognizer()                        # bundled default model, RetinaFace, ONNX Runtime
    >>> frame = rec.predict("photo.jpg")          # FrameResult: .faces[i].box/.label/.probabilities
    >>> rec.predict_batch(["a.jpg", "b.png"]).to_pandas()
    >>> for frame in rec.predict_video("clip.mp4"):   # streamed; faces carry stable track ids
    ...     print(frame.frame_index, [(f.track_id, f.label) for f in frame.faces])
    >>> for frame in rec.stream(camera_frames, fps=30, detect_every=5):   # any iterable of arrays
    ...     cv2.imshow("emolens", frame.plot())

Heavy modules (torch, ONNX Runtime, OpenCV) load when a Recognizer is built, not on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator


class Recognizer:
    """Detect faces, align them, and classify their expressions, all faces of a call in one batch.

    model: a bundled model name, ``"default"``, or a ``.safetensors`` path.
    detector: a registered detector name (see ``emolens detectors``; ``"none"``: each image is one
        pre-cropped face, resized to the model's input) or a FaceDetector object.
    backend: ``"onnx"`` (ONNX Runtime, default; torch if onnxruntime is missing) or ``"torch"``.
    precision: the classifier network: ``"auto"`` (default: the model's INT8 copy where its card
        shows parity with the float network, as for the bundled models; else float), ``"float"``
        (as trained) or ``"int8"`` (ONNX Runtime only); see :mod:`emolens.runtime.quantize`.
    threads: CPU threads for the classifier and detector runtimes (default: EMOLENS_THREADS or all).
    margin: border around each face crop, as a fraction of the face size.
    min_score: detector confidence threshold (default: the detector's own).
    max_side: the detector works on a copy at most this many pixels on its longer side (0: full
        size; larger finds smaller faces, smaller is faster). Default: by kind of input, as
        ``emolens predict / video / webcam`` and the server do (:mod:`emolens.vision.detection_size`):
        960 for photos (``predict``, ``predict_batch``; smaller images at their own size), 320 for
        streams (``tracker``, ``stream``, ``predict_video``); a number sets both.
    first_pass: photos are first detected at this size (default
        :data:`~emolens.vision.detection_size.FIRST_PASS`, the stream size) and again at ``max_side``
        only when that pass is unsure (no face, a face not clearly one or small, a faint candidate:
        :meth:`~emolens.vision.detectors.base.FaceDetector.sure`); 0: one pass at ``max_side``.
    tta: test-time augmentation: ``flip`` (or True) also classifies the mirrored face and averages,
        about one point more accuracy for twice the classifier time; ``ten_crop`` averages ten views
        for ten times the time. Off by default here (None: follow the model spec, as `evaluate` does).
    min_confidence: a face whose top calibrated probability is below this is labelled ``uncertain``
        (its probabilities are kept); off by default.
    raw: the network's own probabilities, without the model's stored calibration and operating
        point (those follow the training set's class frequencies); off by default.
    trust_unhashed: load a model whose spec gives no sha256 (its file is then not checked, and a
        warning says so); off by default: such a model is refused.
    """

    def __init__(self, model: str = "default", detector=None, backend: str = "onnx", *, precision: str = "auto",
                 threads: int | None = None, margin: float | None = None, min_score: float | None = None,
                 max_side: int | None = None, first_pass: int | None = None, tta: bool | str | None = False,
                 min_confidence: float | None = None, raw: bool = False, trust_unhashed: bool = False):
        from .runtime import load_classifier
        from .vision.align import DEFAULT_MARGIN
        from .vision.detection_size import FIRST_PASS, detection_size
        from .vision.detectors import FaceDetector, create_detector
        from .vision.pipeline import Pipeline

        self.max_side = max_side
        if isinstance(detector, FaceDetector):
            self.detector = detector
        else:  # first: a missing detector package is the quicker error to report
            self.detector = create_detector(detector, min_score=min_score, max_side=detection_size("photo", max_side),
                                            threads=threads, first_pass=FIRST_PASS if first_pass is None else first_pass)
        if min_confidence is not None and not 0 <= min_confidence <= 1:
            raise ValueError(f"min_confidence must lie in [0, 1], not {min_confidence}")
        self.min_confidence = min_confidence
        self.classifier = load_classifier(model, backend=backend, threads=threads, raw=raw,
                                          trust_unhashed=trust_unhashed, precision=precision)
        self.pipeline = Pipeline(self.detector, self.classifier, DEFAULT_MARGIN if margin is None else margin, tta,
                                 min_confidence, max_side=detection_size("photo", max_side))

    def __repr__(self) -> str:
        return (f"Recognizer(model={self.classifier.name!r}, detector={self.detector.name!r}, "
                f"backend={self.classifier.backend!r}, precision={self.classifier.precision!r}, classes={self.classes})")

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def info(self) -> dict:
        """The model and pipeline this Recognizer runs: name, version, architecture, classes, face
        size, weights sha256, validation metrics (as shipped, calibrated, unless ``raw``: see
        :meth:`~emolens.models.weights.ModelSpec.reported_metrics`), backend, detector and its detection size per kind of
        input (the server's /v1/models)."""
        from .vision.detection_size import DETECTION_SIZE, detection_size

        spec = self.classifier.spec
        info = {"name": spec.name, "version": str(spec.version), "arch": spec.arch, "classes": list(spec.classes),
                "input_size": spec.preprocess.input_size, "backend": self.classifier.backend,
                "precision": self.classifier.precision,
                "detector": self.detector.name,
                "detection_size": {kind: detection_size(kind, self.max_side) for kind in DETECTION_SIZE},
                "first_pass": self.detector.first_pass,
                "calibrated": not self.classifier.raw and bool(spec.calibration)}
        if spec.sha256:
            info["sha256"] = spec.sha256
        metrics = spec.reported_metrics(raw=self.classifier.raw)   # those of the probabilities it gives
        if metrics:
            info["metrics"] = metrics
        return info

    def predict(self, image, *, bgr: bool = False):
        """Faces in one image: a path, encoded bytes, a numpy array (RGB, or BGR with ``bgr=True``)
        or a PIL image. Returns a :class:`~emolens.vision.results.FrameResult` (no faces: empty)."""
        return self.predict_batch([image], bgr=bgr)[0]

    def predict_batch(self, images: Iterable, *, bgr: bool = False):
        """Faces in several images; all faces are classified in one batched call.

        Returns :class:`~emolens.vision.results.Results` (a list of FrameResult, in input order,
        with ``to_pandas()``/``to_json()``). A bad image raises ImageError naming it; to skip bad
        files instead, read them first with :func:`emolens.vision.images.load_image`.
        """
        from .vision.images import load_image
        from .vision.results import Results

        images = list(images)
        loaded = [load_image(im, bgr=bgr) for im in images]
        frames = self.pipeline.run([rgb for rgb, _ in loaded], [src for _, src in loaded])
        for frame, image, (rgb, _) in zip(frames, images, loaded):
            if not isinstance(image, (str, Path)):     # no file to read again: plot() and save() draw on this
                frame.image = rgb
        return Results(frames)

    def tracker(self, *, detect_every: int | None = None, half_life: float = 0.5, patience: float | None = None):
        """A :class:`~emolens.vision.streaming.StreamTracker` for one stream of frames, with this
        recogniser's settings: ``tracker.update(frame, bgr=..., timestamp=...)`` gives each frame's
        FrameResult with stable ``track_id`` per face.

        ``detect_every``: run the face detector every N-th frame and carry the faces in between
        (default :data:`~emolens.vision.streaming.DEFAULT_DETECT_EVERY`; 1: every frame);
        ``half_life``: seconds of per-track probability smoothing (0: off); ``patience``: seconds
        a face may vanish and come back with its id (default 1). Frames are detected at the stream
        size (``max_side``, by default 320: :mod:`emolens.vision.detection_size`)."""
        from .vision.detection_size import detection_size
        from .vision.streaming import DEFAULT_DETECT_EVERY, StreamTracker
        from .vision.tracking import DEFAULT_PATIENCE

        return StreamTracker(self.pipeline, detect_every=DEFAULT_DETECT_EVERY if detect_every is None else detect_every,
                             half_life=half_life, patience=DEFAULT_PATIENCE if patience is None else patience,
                             min_confidence=self.min_confidence, max_side=detection_size("stream", self.max_side))

    def stream(self, frames: Iterable, *, bgr: bool = False, fps: float | None = None, detect_every: int | None = None,
               half_life: float = 0.5, patience: float | None = None, source: str = "") -> Iterator:
        """Tracked FrameResults of a stream of frames, one per frame, as they come.

        ``frames``: numpy arrays (RGB, or BGR with ``bgr=True``), or the items of
        :func:`emolens.vision.video.iter_video` (which carry their index and timestamp).
        ``fps``: frame rate, for the timestamps that smoothing and ``patience`` count in (default:
        the clock). Other options: see :meth:`tracker`."""
        from .vision.video import VideoFrame

        tracker = self.tracker(detect_every=detect_every, half_life=half_life, patience=patience)
        for i, item in enumerate(frames):
            if isinstance(item, VideoFrame):
                yield tracker.update(item.bgr, bgr=True, index=item.index, timestamp=item.timestamp, source=source)
            else:
                yield tracker.update(item, bgr=bgr, index=i, timestamp=i / fps if fps else None, source=source)

    def predict_video(self, source, *, every: int = 1, half_life: float = 0.5, detect_every: int | None = None,
                      patience: float | None = None) -> Iterator:
        """Stream a video file frame by frame (never whole in memory): FrameResults with
        ``frame_index``, ``timestamp``, stable ``track_id`` per face and probabilities smoothed
        per track with this ``half_life`` in seconds (0: raw). ``every``: process every N-th frame;
        ``detect_every``, ``patience``: see :meth:`tracker`."""
        from .vision.video import iter_video

        with iter_video(source, every=every) as frames:
            yield from self.stream(frames, detect_every=detect_every, half_life=half_life, patience=patience,
                                   source=str(source))
