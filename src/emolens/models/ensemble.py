"""Ensembles: weighted soft voting of trained models, usable wherever a model name is.

An ensemble is a small spec file, ``NAME.ensemble.yaml`` (or ``.json``)::

    name: fer_vote
    members:
      - model: ../runs/vgg_fer/model/vgg_fer.safetensors   # a path (relative to this file) ...
        weight: 0.6
      - model: fer2013                                      # ... or a bundled model name
        weight: 0.4

Give the spec path to any ``--model`` (evaluate, predict, serve, export, Python
``load_classifier``): :func:`pack_ensemble` turns it into one ordinary model file (architecture
``ensemble``, cached by content) holding every member's weights, whose forward pass returns the
log of the weighted mean of the members' softmax. So the usual loaders, the ONNX export (one
graph) and the checksums all apply unchanged. ``emolens ensemble tune`` writes a spec with
weights tuned on a validation split; ``emolens ensemble pack`` writes the single file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..errors import ModelError
from .registry import create_model, register_model
from .weights import ModelSpec, Preprocess, load_model, save_model

SPEC_SUFFIXES = (".ensemble.yaml", ".ensemble.yml", ".ensemble.json")


def is_ensemble_spec(path: str | Path) -> bool:
    return str(path).lower().endswith(SPEC_SUFFIXES)


@dataclass
class Member:
    model: str          # bundled name or weights path (relative paths: to the spec file's folder)
    weight: float = 1.0


@dataclass
class EnsembleSpec:
    name: str
    members: list[Member]
    method: str = "soft_vote"
    tuned: dict = field(default_factory=dict)     # how the weights were chosen (split, objective, n)
    metrics: dict = field(default_factory=dict)   # the ensemble's metrics on the tuning split

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> "EnsembleSpec":
        if not isinstance(d, dict) or not d.get("members"):
            raise ModelError(f"{source}: an ensemble spec needs 'members' (a list of model + weight)")
        members = []
        for m in d["members"]:
            if isinstance(m, str):
                m = {"model": m}
            if not isinstance(m, dict) or "model" not in m:
                raise ModelError(f"{source}: each member needs 'model' (a path or bundled name), got {m!r}")
            weight = float(m.get("weight", 1.0))
            if weight < 0:
                raise ModelError(f"{source}: member {m['model']}: weight must not be negative")
            members.append(Member(str(m["model"]), weight))
        if sum(m.weight for m in members) <= 0:
            raise ModelError(f"{source}: the member weights sum to zero")
        method = d.get("method", "soft_vote")
        if method != "soft_vote":
            raise ModelError(f"{source}: unknown ensemble method {method!r} (only soft_vote)")
        return cls(name=str(d.get("name") or Path(source).name.split(".")[0] or "ensemble"), members=members,
                   method=method, tuned=dict(d.get("tuned") or {}), metrics=dict(d.get("metrics") or {}))

    @classmethod
    def load(cls, path: str | Path) -> "EnsembleSpec":
        import yaml

        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ModelError(f"{path}: cannot read ensemble spec ({e.strerror})") from None
        try:
            raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            raise ModelError(f"{path}: not a valid ensemble spec ({e})") from None
        return cls.from_dict(raw, str(path))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        import yaml

        from ..files import atomic_write_bytes

        path = Path(path)
        d = self.to_dict()
        text = json.dumps(d, indent=2) + "\n" if path.suffix.lower() == ".json" else yaml.safe_dump(d, sort_keys=False)
        atomic_write_bytes(path, text.encode())
        return path


class SoftVote(nn.Module):
    """Members' softmax averaged with fixed weights; returns log-probabilities (so a softmax of the
    output gives the averaged probabilities back).

    Each member sees the face prepared its own way: the input (the whole face, normalised with the
    ensemble's ``input`` preprocessing) is brought back to [0, 1], centre-cropped to the member's
    ``crop`` if it has one, and re-normalised with the member's mean and std (RGB members get the
    grey channel repeated). ``orders[i]``
    maps the ensemble's classes to member i's outputs.
    """

    def __init__(self, num_classes: int, members: Sequence[dict] = (), weights: Sequence[float] = (),
                 input: dict | None = None):
        super().__init__()
        if not members:
            raise ModelError("an ensemble is built from trained members: write NAME.ensemble.yaml or run "
                             "`emolens ensemble tune` (see docs/zoo.md)")
        if len(weights) != len(members):
            raise ModelError("an ensemble needs one weight per member")
        w = torch.tensor([float(x) for x in weights], dtype=torch.float32)
        self.member_preprocess = [Preprocess(**m.get("preprocess", {})) for m in members]
        self.members = nn.ModuleList(create_model(m["arch"], num_classes=len(m["classes"]), **m.get("options", {}))
                                     for m in members)
        inp = {"mean": 0.5, "std": 0.25, **(input or {})}
        self.in_mean, self.in_std = float(inp["mean"]), float(inp["std"])
        self.register_buffer("weights", w / w.sum(), persistent=False)
        for i, m in enumerate(members):
            order = m.get("order") or list(range(num_classes))
            if len(order) != num_classes:
                raise ModelError(f"ensemble member {i}: class order has {len(order)} entries, expected {num_classes}")
            self.register_buffer(f"order{i}", torch.tensor(order, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        faces = (x * self.in_std + self.in_mean).mean(dim=1) * 255.0   # back to grey pixel values (N, H, W)
        total = None
        for i, (member, pre) in enumerate(zip(self.members, self.member_preprocess)):
            # the member's own normalisation (and centre crop, if it was trained on crops)
            probs = member(pre.normalise(faces)).float().softmax(dim=1).index_select(1, getattr(self, f"order{i}"))
            part = probs * self.weights[i]
            total = part if total is None else total + part
        return torch.log(total.clamp_min(1e-12))


@register_model("ensemble", needs=("members",),
                source="weighted soft voting of trained models (NAME.ensemble.yaml; `emolens ensemble`)")
def ensemble(num_classes: int, **options) -> nn.Module:
    """Weighted soft vote of trained models, as one module (built by :func:`pack_ensemble`)."""
    return SoftVote(num_classes, **options)


# ----------------------------------------------------------------------------------- resolution


def resolve_member(model: str, base: Path | None = None) -> Path:
    """A member's weights file: a bundled name, or a path (relative to ``base``)."""
    from .resolve import resolve_weights

    if is_ensemble_spec(model):
        raise ModelError(f"ensemble member {model}: an ensemble cannot be a member of another ensemble")
    candidate = Path(model)
    if base is not None and not candidate.is_absolute() and (base / candidate).exists():
        return resolve_weights(base / candidate)
    return resolve_weights(model)


def build_soft_vote(members: Sequence[tuple[nn.Module, ModelSpec]], weights: Sequence[float],
                    name: str = "ensemble") -> tuple[SoftVote, ModelSpec]:
    """One SoftVote module (members' weights copied in) and its spec from loaded members."""
    if not members:
        raise ModelError("an ensemble needs at least one member")
    first = members[0][1]
    classes = list(first.classes)
    sizes = {spec.preprocess.input_size for _, spec in members}
    if len(sizes) > 1:
        raise ModelError(f"ensemble {name}: members take different input sizes {sorted(sizes)}; "
                         "they must share one face size")
    entries = []
    for _, spec in members:
        if sorted(spec.classes) != sorted(classes):
            raise ModelError(f"ensemble {name}: member {spec.name} predicts {', '.join(spec.classes)} but "
                             f"{first.name} predicts {', '.join(classes)}; members must share one class set")
        entries.append({"name": spec.name, "arch": spec.arch, "options": dict(spec.options),
                        "classes": list(spec.classes), "preprocess": asdict(spec.preprocess),
                        "order": [spec.classes.index(c) for c in classes], "sha256": spec.sha256})
    pre = first.preprocess
    options = {"members": entries, "weights": [float(w) for w in weights],
               "input": {"mean": pre.mean, "std": pre.std, "channels": pre.channels}}
    module = SoftVote(len(classes), **options)
    for target, (model, _) in zip(module.members, members):
        target.load_state_dict(model.state_dict())
    module.eval()
    # members that share one crop side see that crop of the face (so crop TTA works on the ensemble);
    # otherwise the ensemble takes the whole face and each member crops its centre inside the graph
    crops = {spec.preprocess.crop for _, spec in members}
    spec = ModelSpec(name=name, arch="ensemble", classes=classes,
                     preprocess=Preprocess(input_size=pre.input_size, channels=pre.channels, mean=pre.mean,
                                           std=pre.std, crop=crops.pop() if len(crops) == 1 else 0),
                     options=options)
    return module, spec


def _cache_key(spec: EnsembleSpec, files: Sequence[Path]) -> str:
    from ..files import sha256_of

    h = hashlib.sha256(b"2" + json.dumps(spec.to_dict(), sort_keys=True).encode())  # 2: shared crops
    for f in files:
        h.update(sha256_of(f).encode())
    return h.hexdigest()[:24]


def pack_ensemble(spec_path: str | Path, out: str | Path | None = None) -> Path:
    """Turn ``NAME.ensemble.yaml`` into one model file (``out``, or the cache); returns its path."""
    from ..files import cache_dir
    spec_path = Path(spec_path)
    ens = EnsembleSpec.load(spec_path)
    files = [resolve_member(m.model, spec_path.parent) for m in ens.members]
    if out is None:
        out = cache_dir() / "ensembles" / _cache_key(ens, files) / f"{ens.name}.safetensors"
        if out.exists() and out.with_suffix(".json").exists():
            return out
    loaded = [load_model(f) for f in files]
    module, spec = build_soft_vote(loaded, [m.weight for m in ens.members], ens.name)
    spec.metrics = dict(ens.metrics)
    try:
        return save_model(module, spec, out)
    except OSError:  # a read-only cache: pack into a temporary folder instead
        import tempfile

        return save_model(module, spec, Path(tempfile.mkdtemp(prefix="emolens-ensemble-")) / f"{ens.name}.safetensors")
