"""Classifier re-training on frozen features (cRT, Kang et al. 2020, "Decoupling representation and
classifier"): keep a trained network's features, fit only its last layer again, on class-balanced
samples, for its own class set or another one (a FER-2013 network given a FER+ head).

    emolens retrain-head --model fer2013 --data fer2013.csv.gz --ferplus fer2013new.csv --out crt.safetensors
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import load_dataset
from ..errors import ModelError
from ..models.output_rows import output_layer
from ..models.registry import create_model
from ..models.weights import ModelSpec, load_model, save_model


@dataclass
class HeadResult:
    weights: Path
    train_rows: int
    balanced_rows: int
    val_accuracy: float
    val_macro_f1: float
    seconds: float


@torch.no_grad()
def penultimate_features(model, spec: ModelSpec, faces: np.ndarray, batch: int = 512, tta: str = "none") -> np.ndarray:
    """The input of the network's last layer for uint8 faces, one row per face and view: (V x N, D),
    the views of :meth:`Preprocess.views` (``none``: the centre crop; ``flip``: it, then its mirror images)."""
    model.eval()
    parts = []
    for start in range(0, len(faces), batch):
        views = spec.preprocess.views(faces[start:start + batch], tta)
        parts.append([model.head[:-1](model.forward_features(torch.from_numpy(x))).float().numpy() for x in views])
    if not parts:
        return np.zeros((0, model.head[-1].in_features), np.float32)
    return np.concatenate([np.concatenate(view) for view in zip(*parts)])


def retrain_head(model: str, data, out: str | Path, ferplus=None, classes=None, train_split: str | None = None,
                 val_split: str | None = None, balance: str = "oversample", c: float = 1.0, seed: int = 0,
                 name: str | None = None) -> HeadResult:
    """Fit a new last layer for ``model``'s frozen features on ``data``'s training split.

    ``balance``: ``oversample`` (imbalanced-learn's RandomOverSampler on the features: every class
    as often as the largest) or ``none``. The faces and their mirror images are both used.
    A multinomial logistic regression (scikit-learn) with L2 strength 1/``c`` becomes the layer."""
    import time

    from imblearn.over_sampling import RandomOverSampler
    from sklearn.linear_model import LogisticRegression

    from ..evaluation.metrics import compute_metrics
    from ..models.resolve import resolve_weights

    t0 = time.perf_counter()
    net, spec = load_model(resolve_weights(model))
    if not hasattr(net, "head") or not isinstance(net.head[-1], torch.nn.Linear):
        raise ModelError(f"{spec.name}: retrain-head needs a network whose head ends in a linear layer")
    ds = load_dataset(data, ferplus=ferplus, classes=classes)
    train, val = ds.split(train_split, "train"), ds.split(val_split, "val")
    x = penultimate_features(net, spec, train.images, tta="flip")
    y = np.concatenate([train.labels, train.labels])
    if balance == "oversample":
        x, y = RandomOverSampler(random_state=seed).fit_resample(x, y)
    elif balance != "none":
        raise ModelError(f"unknown balance {balance!r} for retrain-head; choose oversample or none")
    clf = LogisticRegression(C=c, max_iter=500, random_state=seed).fit(x, y)
    n_classes = len(ds.class_names)
    new = create_model(spec.arch, num_classes=n_classes, **spec.options)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith(output_layer(net))}
    new.load_state_dict(state, strict=False)
    last = new.head[-1]
    weight = np.zeros((n_classes, last.in_features), np.float32)
    bias = np.zeros(n_classes, np.float32)
    weight[clf.classes_] = clf.coef_
    bias[clf.classes_] = clf.intercept_
    last.weight.data = torch.from_numpy(weight)
    last.bias.data = torch.from_numpy(bias)
    new.eval()
    new_spec = ModelSpec(name=name or Path(out).stem, arch=spec.arch, classes=list(ds.class_names),
                         preprocess=spec.preprocess, options=dict(spec.options), tta=spec.tta)
    val_x = penultimate_features(net, spec, val.images)
    metrics = compute_metrics(val.labels, clf.predict(val_x), ds.class_names)
    new_spec.metrics = {"split": val.split_names[0], "accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1,
                        "n": metrics.n, "how": f"retrain-head of {spec.name} (balance {balance}, C {c})"}
    weights = save_model(new, new_spec, out)
    return HeadResult(weights, len(train), len(y), metrics.accuracy, metrics.macro_f1, time.perf_counter() - t0)


def feature_extractor(model: str, threads: int | None = None, progress: bool = True):
    """A function uint8 faces -> the frozen penultimate-layer features of ``model`` (a bundled name or
    a weights file), in chunks with rate and ETA (``emolens data audit``'s label-issue model)."""
    import sys

    from tqdm import tqdm

    from ..models.resolve import resolve_weights

    if threads:
        torch.set_num_threads(threads)
    net, spec = load_model(resolve_weights(model))

    def features_of(faces: np.ndarray) -> np.ndarray:
        bar = tqdm(total=len(faces), desc=f"audit: {spec.name} features", unit="face", disable=not progress,
                   file=sys.stderr, mininterval=2)
        parts = []
        for start in range(0, len(faces), 2048):
            parts.append(penultimate_features(net, spec, faces[start:start + 2048]))
            bar.update(len(parts[-1]))
        bar.close()
        return np.concatenate(parts)

    return features_of
