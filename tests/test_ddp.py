"""Distributed data-parallel training through the engine: two CPU processes (gloo) on one machine.

``emolens train --strategy ddp --accelerator cpu --devices 2`` is the same code path as several
GPUs (``--accelerator gpu --devices N``) or nodes (``--num-nodes N`` with MASTER_ADDR/NODE_RANK set):
Lightning starts one process per device and averages the gradients. The run must end like a
single-process run: same files, same model shape, same class set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import synthetic_faces, write_fer_csv

from emolens.models.registry import create_model
from emolens.runtime import load_classifier

TINY = ["--model", "vgg_fer", "--model-option", "widths=[4,8]", "--model-option", "convs_per_stage=1",
        "--model-option", "hidden=[8]", "--model-option", "global_pool=true"]
SHIMS = Path(__file__).parent / "shims"


def _script(tmp_path: Path) -> Path:
    """A launcher file (not ``python -c``): Lightning's DDP re-runs ``sys.argv`` for each extra rank."""
    script = tmp_path / "emolens_main.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(SHIMS)!r})\n"
        "try:\n    import torchvision_ops_shim\n    torchvision_ops_shim.install()\nexcept ImportError:\n    pass\n"
        "from emolens.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    return script


def _train(script: Path, data: Path, out: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(script), "train", "--data", str(data), *TINY, "--epochs", "2", "--batch-size", "8",
           "--precision", "32", "--schedule", "cosine", "--threads", "1", "--out", str(out), "--name", name,
           "--no-progress", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=out)


def test_ddp_two_cpu_processes_gloo(tmp_path):
    images, labels = synthetic_faces(84, seed=4)
    data = write_fer_csv(tmp_path / "fer2013.csv", images, labels, ["Training"] * 56 + ["PublicTest"] * 28)
    script = _script(tmp_path)
    ddp = _train(script, data, tmp_path, "ddp", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # Lightning's own set-up lines are silenced (emolens.engine.quiet); the run says it in one line
    assert "distributed: 2 processes (1 node(s) x 2 device(s), strategy ddp)" in ddp.stdout
    run = tmp_path / "ddp"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 28 and metrics["split"] == "PublicTest"  # rank 0 evaluates the whole split
    clf = load_classifier(run / "model" / "ddp.safetensors", backend="torch")
    probs = clf.predict_proba(images[:5])
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # the same result as a single-process run: the architecture's parameters, classes and output shape
    single = create_model("vgg_fer", 7, widths=[4, 8], convs_per_stage=1, hidden=[8], global_pool=True)
    assert sorted(clf.model.state_dict()) == sorted(single.state_dict())
    assert clf.classes == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    # each of the two processes trained on half of every epoch: 56 rows / 2 ranks / batch 8 = 3 steps
    with open(run / "logs" / "metrics.csv") as f:
        steps = [int(r.split(",")[1]) for r in f.read().splitlines()[1:] if r]
    assert max(steps) + 1 == 2 * 3
