"""Knowledge distillation: a teacher model's probabilities on the training split become its soft labels.

With ``teacher: MODEL`` (a bundled name, a .safetensors file, or an ensemble spec NAME.ensemble.yaml)
and ``soft_label_weight: w``, each training face's target is ``w * teacher + (1 - w) * label``, the
same mixing the FER+ vote distributions use. The teacher sees each face once, without augmentation
(centre crop, mean of the face and its mirror image), before the first epoch.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..data.dataset import FaceDataset
from ..errors import EmolensError


def teacher_probabilities(teacher: str, ds: FaceDataset, batch_size: int = 1024) -> np.ndarray:
    """(N, C) probabilities of ``teacher`` for the faces of ``ds``, in ``ds``'s class order."""
    from ..runtime import load_classifier

    clf = load_classifier(teacher)  # ONNX Runtime; it checks the face size against the model's
    if clf.classes != list(ds.class_names):
        raise EmolensError(f"teacher {teacher!r} predicts {', '.join(clf.classes)}; the training data has "
                           f"{', '.join(ds.class_names)}: distillation needs the same classes in the same order")
    parts = [clf.predict_proba(ds.images[i:i + batch_size], tta=True) for i in range(0, len(ds), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(clf.classes)), np.float32)


def with_teacher_labels(ds: FaceDataset, teacher: str) -> FaceDataset:
    """``ds`` with the teacher's probabilities as its soft labels (printing the teacher's own accuracy)."""
    start = time.time()
    probs = teacher_probabilities(teacher, ds)
    agree = float((probs.argmax(1) == ds.labels).mean()) if len(ds) else 0.0
    print(f"teacher {teacher}: {len(ds)} training faces labelled in {time.time() - start:.0f} s; "
          f"agrees with the labels on {agree:.2%}")
    return dataclasses.replace(ds, soft_labels=probs)
