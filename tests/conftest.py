"""Shared fixtures. Tests run on one torch thread (CI has 2 cores) and never touch the user cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("EMOLENS_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

# The test environment's torchvision shim (see tests/shims/): lets timm and Lightning import when the
# only torchvision available is a CUDA build. The library itself never loads it.
sys.path.insert(0, str(Path(__file__).parent / "shims"))
try:
    import torchvision_ops_shim  # noqa: E402

    torchvision_ops_shim.install()
except ImportError:
    pass

REPO = Path(__file__).resolve().parents[1]
SHARED_FER = REPO.parent / "shared" / "data" / "fer2013"

#: A small but real architecture (a few thousand parameters) for tests that need a model file.
TINY_OPTIONS = {"widths": [4, 8], "convs_per_stage": 1, "hidden": [8], "global_pool": True}


def cli_command(*args: str) -> list[str]:
    """argv that runs ``emolens ARGS`` in a fresh interpreter of the test environment (shims loaded)."""
    boot = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent / 'shims')!r})\n"
            "try:\n    import torchvision_ops_shim as shim; shim.install()\nexcept ImportError:\n    pass\n"
            "from emolens.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", boot, *args]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EMOLENS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "emolens-cache"))


def make_tiny_model(path: Path, classes=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
                    seed: int = 0) -> Path:
    """Save a randomly initialised tiny vgg_fer with its spec; returns the .safetensors path."""
    from emolens.models.registry import create_model
    from emolens.models.weights import ModelSpec, save_model

    torch.manual_seed(seed)
    model = create_model("vgg_fer", num_classes=len(classes), **TINY_OPTIONS).eval()
    spec = ModelSpec(name=path.stem, arch="vgg_fer", classes=list(classes), options=dict(TINY_OPTIONS))
    return save_model(model, spec, path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny7.safetensors")


def synthetic_faces(n: int, n_classes: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 48, 48) uint8 images whose class is visible (a bright bar at a class-specific row) + labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    images = rng.integers(0, 60, size=(n, 48, 48), dtype=np.uint8)
    for i, c in enumerate(labels):
        row = 4 + c * (40 // n_classes)
        images[i, row:row + 4, :] = 220
    return images, labels.astype(np.int64)


def write_fer_csv(path: Path, images: np.ndarray, labels: np.ndarray, usages) -> Path:
    """A FER-2013 style csv (emotion,pixels,Usage); ``.gz`` suffix writes it gzip-compressed."""
    import gzip

    lines = ["emotion,pixels,Usage"]
    for img, lab, use in zip(images, labels, usages):
        lines.append(f"{lab},{' '.join(map(str, img.reshape(-1).tolist()))},{use}")
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="session")
def dask_client(tmp_path_factory):
    """One real Dask LocalCluster for the session: 2 worker processes of one thread each (their
    spill space in the session's temporary folder), closed at the end, leaving no process behind."""
    distributed = pytest.importorskip("distributed")

    import dask

    scratch = str(tmp_path_factory.mktemp("dask"))
    with dask.config.set({"temporary-directory": scratch}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                           local_directory=scratch, silence_logs=40)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
