"""Test-environment shim: pure-torch fallbacks for torchvision's compiled operators.

Why: the only torchvision on PyPI for torch 2.13 (0.28.0) is a CUDA build. On the CPU-only torch
this project's CI uses, its ``_C`` extension does not load, and ``import torchvision`` then fails
with ``RuntimeError: operator torchvision::nms does not exist`` (torchvision registers fake
kernels for ``nms``/``qnms`` whether or not its extension loaded). ``timm`` imports torchvision,
so the model zoo's tests could not import timm at all.

What: before torchvision is imported, :func:`install` checks whether the real extension loads;
only if it does not does it define the two operators torchvision expects to exist
(``torchvision::nms`` and ``torchvision::qnms``) with a small, exact, pure-torch greedy NMS.
No other torchvision op is touched: the zoo never calls them, and they keep raising
torchvision's own "Couldn't load custom C++ ops" error if something does.

Where: tests only. ``tests/conftest.py`` calls :func:`install`; the ``emolens`` package never
imports this file. Users install a torchvision that matches their torch (``pip install
"emolens[zoo]"``) and need no shim.

The CUDA torchvision itself is kept out of site-packages too: installed there, it would break
``import lightning`` (and so ``emolens train``) for every process that does not load this shim.
CI installs it into a folder only the tests see::

    pip install --no-deps --target tests/shims/site torchvision==0.28.0

:func:`install` puts that folder (or ``$EMOLENS_TEST_SITE``) on ``sys.path`` when no other
torchvision is importable.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

#: Where CI installs the test-only torchvision (``pip install --target``).
TEST_SITE = Path(os.environ.get("EMOLENS_TEST_SITE") or Path(__file__).parent / "site")

_LIB = None  # keeps the torch.library.Library alive (dropping it would unregister the ops)
INSTALLED = False


def _real_extension_loads() -> bool:
    """True when torchvision's own compiled ops load (a torchvision built for this torch)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to fix
    for folder in spec.submodule_search_locations:
        for lib in sorted(Path(folder).glob("_C*.so")) + sorted(Path(folder).glob("_C*.pyd")):
            try:
                torch.ops.load_library(str(lib))
                return True
            except (OSError, RuntimeError):
                return False
    return False


def nms(boxes, scores, iou_threshold: float):
    """Greedy non-maximum suppression; boxes (N, 4) as x1, y1, x2, y2. Returns kept indexes, best first."""
    import torch

    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    b = boxes[order].float()
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-12)
    n = len(order)
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def install() -> bool:
    """Register the fallbacks if needed; returns True when it registered them. Idempotent."""
    global _LIB, INSTALLED
    if INSTALLED or "torchvision" in sys.modules:
        return INSTALLED
    if importlib.util.find_spec("torchvision") is None and (TEST_SITE / "torchvision").is_dir():
        sys.path.append(str(TEST_SITE))
        importlib.invalidate_caches()
    if _real_extension_loads():
        return False
    import torch

    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.impl("nms", nms, "CompositeExplicitAutograd")
    _LIB.impl("qnms", lambda d, s, t: nms(d.dequantize(), s.dequantize(), t), "CompositeExplicitAutograd")
    INSTALLED = True
    return True
