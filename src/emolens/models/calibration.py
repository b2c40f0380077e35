"""A model's calibration and operating point, as stored in its spec and applied at inference.

``softmax((logits x scale + bias) / T)``: ``scale`` is vector scaling (one factor per class, Guo
et al. 2017), ``bias`` the operating point (a per-class logit shift that takes the training set's
class frequencies out of the labels), ``T`` the temperature that makes the probabilities mean
what they say. :mod:`emolens.evaluation.calibration` fits both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Calibration:
    """What the runtime applies to a model's logits; stored as ``spec.calibration``."""

    temperature: float = 1.0
    scale: list[float] = field(default_factory=list)        # per class, multiplies the logits (vector scaling)
    logit_bias: list[float] = field(default_factory=list)   # per class, added before the temperature
    prior: list[float] = field(default_factory=list)        # training class frequencies the bias was built from
    strength: list[float] = field(default_factory=list)     # tau per class: bias = -tau * log(prior)
    fitted_on: str = ""                                     # the split (and TTA) the values were chosen on
    objective: str = ""                                     # what the operating point maximised
    ece_before: float | None = None
    ece_after: float | None = None
    ece_cross_fitted: float | None = None                   # fitted on one half, measured on the other
    # what users get on that split with it applied (as shipped): split, n, accuracy, macro_f1 (one
    # pass) and flip_accuracy, flip_macro_f1 (flip TTA); :meth:`ModelSpec.reported_metrics` shows them
    metrics: dict = field(default_factory=dict)
    # how each post-hoc step did out of sample (cross-fitted on two fixed halves of the split) and
    # which one ships: emolens.evaluation.calibration_stages.StageReport.to_dict()
    out_of_sample: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Calibration":
        d = dict(d or {})
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)

    def steps(self) -> str:
        """What this calibration changes, in words: ``temperature``, ``vector scaling + temperature``,
        ``... + operating point``, or ``no post-hoc step`` (the raw network's output)."""
        parts = (["vector scaling"] if self.scale and any(abs(v - 1) > 1e-9 for v in self.scale) else []) + \
            (["temperature"] if abs(self.temperature - 1) > 1e-9 else []) + \
            (["operating point"] if self.logit_bias and any(self.logit_bias) else [])
        return " + ".join(parts) or "no post-hoc step"

    def apply(self, logits: np.ndarray, affine: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Calibrated logits: (logits x scale + bias) / T, as ``logits x a + b`` with ``(a, b) =``
        :meth:`affine` (pass it when applying the same calibration many times)."""
        a, b = affine or self.affine()
        return np.asarray(logits, dtype=np.float32) * a + b

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)``, float32, with ``apply(z) == z x a + b``: ``a = scale / T``, ``b = bias / T``."""
        t = np.float32(self.temperature)
        a = np.asarray(self.scale or [1.0], dtype=np.float32) / t
        b = np.asarray(self.logit_bias or [0.0], dtype=np.float32) / t
        return a, b


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e.astype(np.float32, copy=False)
