"""Weight averaging: one network whose weights are the mean of several (``emolens average``).

Averaging the weights of networks that share an architecture and a starting point (fine-tuned
from the same weights, or checkpoints along one run's last epochs) gives one model that often
beats each of them, at the cost of one network at inference time, unlike an ensemble: the
"model soup" of Wortsman et al. 2022 (https://arxiv.org/abs/2203.05482) and the stochastic
weight averaging of Izmailov et al. 2018 (https://arxiv.org/abs/1803.05407).

Members are model files (a bundled name or ``NAME.safetensors`` with its spec) or a training
run's Lightning checkpoints (``RUN/checkpoints/last.ckpt``, or any ``RUN/<folder>/*.ckpt``),
which take their architecture from the run's exported spec (``RUN/model/*.json``). The mean of
batch-norm layers' running statistics is not the statistics of the mean network, so they are
measured again on training faces (:func:`recalibrate_batchnorm`) when data is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..models.registry import create_model
from ..models.weights import ModelSpec, load_model, read_spec
from ..text import duration


def load_member(path: str) -> tuple[dict[str, torch.Tensor], ModelSpec]:
    """The state dict and spec of one member: a model file / bundled name, or a run's checkpoint."""
    if str(path).endswith(".ckpt"):
        ckpt = Path(path)
        if not ckpt.exists():
            raise ModelError(f"{ckpt}: no such checkpoint")
        specs = sorted((ckpt.parent.parent / "model").glob("*.json"))
        if not specs:
            raise ModelError(f"{ckpt}: no exported model spec in {ckpt.parent.parent / 'model'} to rebuild the "
                             "network from (a checkpoint is averaged once its run has finished)")
        spec = read_spec(specs[0])
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        except Exception as e:  # a truncated file, not a Lightning checkpoint, ...
            raise ModelError(f"{ckpt}: not a readable training checkpoint ({type(e).__name__}: {e})") from None
        return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}, spec
    from ..models.resolve import resolve_weights

    model, spec = load_model(resolve_weights(path))
    return model.state_dict(), spec


def average_states(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None,
                   names: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """The weighted mean of state dicts with the same keys and shapes (integer buffers, such as
    batch norm's step counter, are taken from the first)."""
    if not states:
        raise ModelError("averaging needs at least one model")
    names = list(names) or [f"member {i + 1}" for i in range(len(states))]
    w = np.ones(len(states)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(states) or (w < 0).any() or w.sum() <= 0:
        raise ModelError("averaging needs one non-negative weight per model, not all zero")
    w = w / w.sum()
    first = states[0]
    out = {}
    for name, state in zip(names[1:], states[1:]):
        if set(state) != set(first):
            missing = sorted(set(first) ^ set(state))[:3]
            raise ModelError(f"{name}: its layers differ from {names[0]}'s ({', '.join(missing)} ...): only "
                             "networks of one architecture can be averaged")
    for key, ref in first.items():
        for name, state in zip(names[1:], states[1:]):
            if state[key].shape != ref.shape:
                raise ModelError(f"{name}: {key} has shape {tuple(state[key].shape)}, {names[0]} has "
                                 f"{tuple(ref.shape)}: only networks of one architecture can be averaged")
        if not ref.is_floating_point():
            out[key] = ref.clone()
            continue
        out[key] = sum(float(wi) * s[key].double() for wi, s in zip(w, states)).to(ref.dtype)
    return out


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, spec: ModelSpec, faces: np.ndarray, batch_size: int = 256) -> int:
    """Measure every batch-norm layer's running mean and variance again, as the cumulative average
    over ``faces`` (uint8, at the spec's input size, centre crop as at inference); returns the number
    of layers reset (0: the model has none, nothing to do)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(faces) == 0:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts the same
    model.eval()  # dropout stays off: the statistics are those of the network as it predicts
    for m in norms:
        m.train()
    for start in range(0, len(faces), batch_size):
        model(torch.from_numpy(spec.preprocess.normalise(faces[start:start + batch_size])))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return len(norms)


def average_models(members: Sequence[str], weights: Sequence[float] | None = None,
                   bn_faces: np.ndarray | None = None, name: str = "averaged") -> tuple[nn.Module, ModelSpec]:
    """One model whose weights are the (weighted) mean of ``members``' (see the module docstring)."""
    loaded = [load_member(m) for m in members]
    first = loaded[0][1]
    for member, (_, spec) in zip(members[1:], loaded[1:]):
        for what in ("arch", "options", "classes", "preprocess"):
            if getattr(spec, what) != getattr(first, what):
                raise ModelError(f"{member}: its {what} ({getattr(spec, what)}) differs from {members[0]}'s "
                                 f"({getattr(first, what)}): only networks of one architecture, class set and "
                                 "preprocessing can be averaged")
    state = average_states([s for s, _ in loaded], weights, names=members)
    model = create_model(first.arch, num_classes=len(first.classes), **first.options)
    model.load_state_dict(state, strict=True)
    if bn_faces is not None:
        if bn_faces.shape[-1] != first.preprocess.input_size:
            raise ModelError(f"the batch-norm faces are {bn_faces.shape[-1]} px; the models take "
                             f"{first.preprocess.input_size} px faces")
        recalibrate_batchnorm(model, first, bn_faces)
    model.eval()
    spec = ModelSpec(name=name, arch=first.arch, classes=list(first.classes), preprocess=first.preprocess,
                     options=dict(first.options), tta=first.tta)
    return model, spec


@dataclass
class AverageResult:
    weights: Path           # the averaged model, NAME.safetensors (spec beside it)
    record: Path            # how it was made (NAME.average.yaml)
    faces: int              # training faces that re-measured the batch-norm statistics (0: none)
    model: nn.Module
    spec: ModelSpec


def average(members: Sequence[str], out: str | Path, weights: Sequence[float] | None = None,
            data: Sequence[str] | None = None, split: str | None = "Training", name: str | None = None,
            ferplus: str | None = None, classes=None) -> AverageResult:
    """Average ``members`` into ``out`` (.safetensors + spec + record): ``emolens average`` and the
    experiment files' average rows. ``data``/``split``: the training faces whose batch-norm
    statistics the averaged network takes (``split`` None: the data's training split)."""
    from ..data import load_dataset
    from ..models.weights import save_model

    members = [str(m) for m in members]
    if weights and len(weights) != len(members):
        raise ModelError(f"--weights: {len(weights)} weights for {len(members)} models")
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ModelError(f"--out {out}: give a .safetensors path (the spec is written beside it)")
    faces, data_list = None, [str(d) for d in ([data] if isinstance(data, (str, Path)) else data or [])]
    if data_list:
        ds = load_dataset(data_list, ferplus=ferplus, classes=classes)
        split = ds.resolve_split(split, "train")
        faces = ds.split(split).images
    model, spec = average_models(members, weights, faces, name=name or out.stem)
    path = save_model(model, spec, out)
    command = average_command(members, path, weights, data_list or None, split, name)
    record = write_record(path, members, weights, data_list or None, split, 0 if faces is None else len(faces), command)
    return AverageResult(path, record, 0 if faces is None else len(faces), model, spec)


#: Beside an averaged ``NAME.safetensors``: how it was made (members, weights, batch-norm faces, command).
RECORD_SUFFIX = ".average.yaml"


def record_path(weights: str | Path) -> Path:
    weights = Path(weights)
    return weights.with_name(weights.stem + RECORD_SUFFIX)


def average_command(members: Sequence[str], out: str | Path, weights: Sequence[float] | None = None,
                    data: Sequence[str] | None = None, split: str = "Training", name: str | None = None) -> str:
    """The ``emolens average`` command line that makes ``out`` from ``members`` (written in its record)."""
    import shlex

    words = [*map(str, members), "--out", str(out)]
    words += ["--weights", *map(str, weights)] if weights else []
    words += ["--data", *map(str, data), "--split", split] if data else []
    words += ["--name", name] if name else []
    return "emolens average " + " ".join(shlex.quote(w) for w in words)


def write_record(weights: str | Path, members: Sequence[str], weights_used: Sequence[float] | None,
                 bn_data: Sequence[str] | None, bn_split: str, bn_faces: int, command: str) -> Path:
    """Write the averaging record beside ``weights`` (atomically), with one line per member on how it was trained."""
    import yaml

    from ..files import atomic_write_bytes

    record = {
        "command": command,
        "members": [{"model": str(m), "weight": float(w), "made": describe_member(m)}
                    for m, w in zip(members, weights_used or [1.0] * len(members))],
        "batchnorm": {"data": list(bn_data or []), "split": bn_split if bn_data else None, "faces": int(bn_faces)},
        "train_seconds": member_seconds(members),
    }
    path = record_path(weights)
    atomic_write_bytes(path, yaml.safe_dump(record, sort_keys=False, allow_unicode=True).encode())
    return path


def read_record(weights: str | Path) -> dict:
    import yaml

    path = record_path(weights)
    if not path.exists():
        raise ModelError(f"{weights}: no averaging record beside it ({path.name}); it is written by emolens average")
    return yaml.safe_load(path.read_text())


def _member_run(member: str) -> Path | None:
    """The training run folder a member came from (a checkpoint's or an exported model's), if any."""
    path = Path(member)
    run = path.parent.parent
    return run if path.suffix in (".ckpt", ".safetensors") and (run / "config.yaml").exists() else None


def _run_summary(run: Path) -> str:
    import json

    import yaml

    from .card import adversarial_text

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    parts = [f"run `{cfg.get('name', run.name)}`: {cfg.get('model')}",
             f"from {cfg['pretrained']}" if cfg.get("pretrained") else "from random weights",
             f"{cfg.get('epochs')} epochs, {cfg.get('optimizer')} lr {cfg.get('lr')} {cfg.get('schedule')}",
             f"label smoothing {cfg.get('label_smoothing')}"]
    if cfg.get("teacher"):
        parts.append(f"teacher {cfg['teacher']} ({cfg.get('teacher_tta', 'flip')}) x {cfg.get('soft_label_weight')}")
    if cfg.get("logit_adjust"):
        parts.append(f"logit-adjusted loss tau {cfg['logit_adjust']}")
    if nsl := adversarial_text(cfg):
        parts.append(nsl)
    parts.append(f"seed {cfg.get('seed')}")
    metrics = run / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        parts.append(f"{duration(m.get('train_seconds', 0))}; {m.get('split')} one pass {m['accuracy']:.2%}")
    return ", ".join(parts)


def describe_member(member: str) -> str:
    """One line on how a member was trained: its run's settings, its own averaging record, or the bundled
    model's version and checksum."""
    from ..weights import bundled_path

    run = _member_run(member)
    if run is not None:
        what = f"checkpoint {Path(member).name} of " if str(member).endswith(".ckpt") else ""
        return what + _run_summary(run)
    if record_path(member).exists():
        inner = read_record(member)
        return "itself the mean of: " + "; ".join(f"{m['model']} ({m['made']})" for m in inner["members"])
    from ..models.weights import read_spec

    bundled = bundled_path(str(member))
    if bundled is not None:
        spec = read_spec(bundled)
        return f"the bundled `{member}` model, version {spec.version}, sha256 {spec.sha256[:12]}"
    if Path(member).with_suffix(".json").exists():
        spec = read_spec(member)
        return f"the model file {member} (`{spec.name}` version {spec.version}, sha256 {spec.sha256[:12]})"
    return f"the model file {member}"


def member_seconds(members: Sequence[str]) -> float:
    """Training wall time of the members' runs, each run counted once (nested averages included)."""
    import json

    runs: set[Path] = set()

    def collect(member: str) -> None:
        run = _member_run(member)
        if run is not None:
            runs.add(run.resolve())
        elif record_path(member).exists():
            for m in read_record(member)["members"]:
                collect(m["model"])

    for m in members:
        collect(m)
    return round(sum(json.loads((r / "metrics.json").read_text()).get("train_seconds", 0)
                     for r in runs if (r / "metrics.json").exists()), 1)
