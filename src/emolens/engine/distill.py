"""Knowledge distillation: a teacher model's probabilities on the training split become its soft labels.

With ``teacher: MODEL`` (a bundled name, a .safetensors file, or an ensemble spec NAME.ensemble.yaml)
and ``soft_label_weight: w``, each training face's target is ``w * teacher + (1 - w) * label``, the
same mixing the FER+ vote distributions use. The teacher sees each face once, without augmentation,
before the first epoch, averaged over the views of ``teacher_tta`` (default: the face and its mirror
image; ``ten_crop``: five crops and their mirror images). The probabilities are cached by teacher,
views and faces, so a resumed or repeated run does not label again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import numpy as np

from ..data import cache
from ..data.dataset import FaceDataset
from ..errors import EmolensError


def teacher_probabilities(teacher: str, ds: FaceDataset, tta: str = "flip") -> np.ndarray:
    """(N, C) probabilities of ``teacher`` for the faces of ``ds``, in ``ds``'s class order.

    The teacher's own (uncalibrated) softmax. A teacher may predict a subset of the data's classes
    (a 7-class FER-2013 model teaching an 8-class FER+ network): the classes it lacks get 0."""
    from ..runtime import load_classifier

    clf = load_classifier(teacher, raw=True)  # ONNX Runtime; it checks the face size against the model's
    if not set(clf.classes) <= set(ds.class_names):
        raise EmolensError(f"teacher {teacher!r} predicts {', '.join(clf.classes)}; the training data has "
                           f"{', '.join(ds.class_names)}: a teacher's classes must be among the data's")
    key = hashlib.sha256(f"{clf.spec.sha256}/{tta}/{clf.classes}".encode() + ds.images.tobytes()).hexdigest()[:32]
    cached = cache.load("teacher", key)
    if cached is not None:
        probs = cached["probs"]
    else:
        probs = clf.predict_proba(ds.images, tta=tta)  # in bounded batches
        cache.save("teacher", key, {"probs": probs})
    out = np.zeros((len(ds), len(ds.class_names)), dtype=np.float32)
    out[:, [list(ds.class_names).index(c) for c in clf.classes]] = probs
    return out


def with_teacher_labels(ds: FaceDataset, teacher: str, tta: str = "flip", mix: float = 1.0) -> FaceDataset:
    """``ds`` with the teacher's probabilities as its soft labels (printing the teacher's own accuracy).

    ``mix`` < 1 keeps the data's own soft labels (FER+ vote distributions) in that share:
    ``soft = mix * teacher + (1 - mix) * votes`` (one network taught by both label sets)."""
    start = time.time()
    probs = teacher_probabilities(teacher, ds, tta)
    agree = float((probs.argmax(1) == ds.labels).mean()) if len(ds) else 0.0
    print(f"teacher {teacher} ({tta}): {len(ds)} training faces labelled in {time.time() - start:.0f} s; "
          f"agrees with the labels on {agree:.2%}")
    if mix < 1 and ds.soft_labels is not None:
        probs = (mix * probs + (1 - mix) * ds.soft_labels).astype(np.float32)
    return dataclasses.replace(ds, soft_labels=probs)
