"""Face classifiers behind one interface: ONNX Runtime (default, fast, no torch needed for the
bundled models, which ship their ONNX files) or eager torch.

Both take uint8 face crops (N, H, W) at the model's input size and return class probabilities
(N, C); the preprocessing comes from the model's spec, so it cannot drift from training.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models.calibration import Calibration, softmax
from ..models.weights import ModelSpec, load_model
from ..models.resolve import resolve_weights
from .onnx_model import int8_bytes, onnx_bytes
from .quantize import choose_precision

BACKENDS = ("onnx", "torch")
FACES_PER_CALL = 256  # faces per call of the network (x 10 views at most)


class Classifier:
    """Common part: the spec, class names, input size, calibration and softmax over logits.

    Probabilities are calibrated with the spec's stored calibration and operating point
    (``softmax((logits + bias) / T)``, see :mod:`emolens.evaluation.calibration`) unless ``raw``
    is set: then they are the network's own softmax, with the training set's class prior in them.
    """

    spec: ModelSpec
    backend: str
    raw: bool = False
    precision: str = "float"  # the network it runs: float, or its INT8 copy (emolens.runtime.quantize)

    _calibration: tuple = (None, None, None, None)  # (raw, the spec's dict, Calibration, its affine): once, not per call

    @property
    def calibration(self) -> Calibration:
        return self._built_calibration()[0]

    def _built_calibration(self) -> tuple[Calibration, tuple[np.ndarray, np.ndarray]]:
        raw, source, built, affine = self._calibration
        if raw is not self.raw or source is not self.spec.calibration:
            built = Calibration() if self.raw else Calibration.from_dict(self.spec.calibration)
            affine = built.affine()
            self._calibration = (self.raw, self.spec.calibration, built, affine)
        return built, affine

    @property
    def classes(self) -> list[str]:
        return list(self.spec.classes)

    @property
    def input_size(self) -> int:
        return self.spec.preprocess.input_size

    @property
    def name(self) -> str:
        return self.spec.name

    def logits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, faces: np.ndarray, tta: bool | str | None = None) -> np.ndarray:
        """Probabilities (N, C) for uint8 faces (N, H, W); ``tta`` averages over views of each face:
        ``flip`` (or True) the face and its mirror image, ``ten_crop`` five crops and their mirror
        images, ``none`` (or False) one pass; None: the model spec's default."""
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        side = self.input_size
        if faces.shape[1:] != (side, side):
            raise ModelError(f"{self.name}: faces must be {side}x{side}, got {faces.shape[1]}x{faces.shape[2]}")
        calibration, affine = self._built_calibration()
        probs = softmax(calibration.apply(self.view_logits(faces, tta), affine))
        return probs[0] if len(probs) == 1 else probs.mean(0)

    def view_logits(self, faces: np.ndarray, tta: bool | str | None = None) -> np.ndarray:
        """The network's raw logits (V, N, C) for each test-time view of uint8 faces (N, H, W)."""
        faces = np.asarray(faces)
        tta = self.spec.tta if tta is None else tta
        parts = []
        for start in range(0, len(faces), FACES_PER_CALL):  # bounded memory for large arrays and ten crops
            views = self.spec.preprocess.views(faces[start:start + FACES_PER_CALL], tta)
            z = self.logits(np.concatenate(views) if len(views) > 1 else views[0])
            parts.append(z.reshape(len(views), -1, z.shape[1]))
        if not parts:
            return np.zeros((1, 0, len(self.classes)), dtype=np.float32)
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


class ModuleClassifier(Classifier):
    """A torch module in memory behind the classifier interface: how training, model cards and
    experiments score a network they hold, with the same preprocessing, test-time augmentation,
    batching and calibration as inference (``raw=True``: the network's own softmax)."""

    backend = "torch"

    def __init__(self, model, spec: ModelSpec, raw: bool = False):
        self.model, self.spec, self.raw = model.eval(), spec, raw

    def logits(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()


class TorchClassifier(ModuleClassifier):
    """A weights file run by eager torch (no ONNX Runtime)."""

    def __init__(self, weights: Path, trust_unhashed: bool = False):
        super().__init__(*load_model(weights, trust_unhashed=trust_unhashed))


class OnnxClassifier(Classifier):
    """The network in ONNX Runtime: a bundled model's shipped ONNX file (torch is not imported), or a
    user's model exported from torch once (:func:`emolens.runtime.onnx_model.onnx_bytes`)."""

    backend = "onnx"

    def __init__(self, weights: Path, threads: int | None = None, trust_unhashed: bool = False,
                 precision: str = "float"):
        import onnxruntime as ort

        data, self.spec = onnx_bytes(weights, trust_unhashed)
        self.precision = choose_precision(self.spec.int8, precision, weights.name)
        if self.precision == "int8":
            data = int8_bytes(weights, self.spec, trust_unhashed)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or int(os.environ.get("EMOLENS_THREADS", "0") or 0)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep, not spin
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"faces": np.ascontiguousarray(x, dtype=np.float32)})[0]


def load_classifier(model: str | Path | None = "default", backend: str = "onnx",
                    threads: int | None = None, raw: bool = False, trust_unhashed: bool = False,
                    precision: str = "float") -> Classifier:
    """A classifier for a bundled model name, ``default``, or a ``.safetensors`` path.

    ``raw``: skip the model's stored calibration and operating point (the network's own softmax).
    ``trust_unhashed``: load a model whose spec gives no sha256 (unchecked; says so on stderr).
    ``precision``: ``float`` (the network as trained; the default here, so evaluation and
    calibration see it), ``int8`` (its INT8 copy, ONNX Runtime only; an error when the model ships
    none) or ``auto`` (INT8 where its parity with the float network holds: what the Recognizer,
    ``emolens predict``/``video``/``webcam`` and the server run); see :mod:`emolens.runtime.quantize`."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    weights = resolve_weights(model)
    if backend == "torch":
        if choose_precision({"file": "-", "parity": {}}, precision, weights.name) == "int8":   # (checks the name)
            raise ModelError("precision int8 runs on the onnx backend only; use backend onnx or precision float")
        clf: Classifier = TorchClassifier(weights, trust_unhashed)
    else:
        try:
            clf = OnnxClassifier(weights, threads, trust_unhashed, precision)
        except ImportError as e:
            if e.name != "onnxruntime":
                raise
            clf = TorchClassifier(weights, trust_unhashed)  # onnxruntime missing: torch still works
    clf.raw = raw
    return clf
