"""Training configuration as data: a YAML file, overridden by command-line flags."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.yamlfile import read_yaml_mapping
from ..errors import EmolensError


@dataclass
class AugmentConfig:
    """Batch augmentation settings (applied by :func:`emolens.engine.augment.augment`)."""

    rotation: float = 15.0      # degrees, uniform in [-r, r]
    shift: float = 0.1          # fraction of the side, uniform in [-s, s]
    zoom: float = 0.15          # scale uniform in [1 - z, 1 + z]
    hflip: bool = True
    crop: int = 44              # output side (random crop; the model sees this side); >= input side = no crop
    brightness: float = 0.2     # additive, in units of the normalised image
    contrast: float = 0.2       # multiplicative, in [1 - c, 1 + c]
    erase: float = 0.25         # probability of erasing one random rectangle


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "plateau", "cosine", "onecycle")
PRECISIONS = ("auto", "32", "32-true", "64", "64-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true")
ADVERSARIAL_NORMS = ("l2", "inf", "sign")


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``auto``: bfloat16 mixed precision where the hardware computes in bfloat16 (a CUDA GPU that
    supports it, a CPU with AVX512-BF16 or AMX), 16-mixed on older GPUs, else float32: on a CPU
    without native bfloat16 (AVX2 only) the emulated bfloat16 steps are about 13x slower than float32.
    Any other value is returned as it is."""
    precision = str(precision)
    if precision != "auto":
        return precision
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"


#: The bundled model whose network ``emolens train`` builds when no options are given.
RECIPE_MODEL = "ferplus"


def recipe_options(model: str) -> dict[str, Any]:
    """The architecture options of the network that ships (the bundled model's spec), when ``model``
    is its architecture; other architectures start from their own defaults. Read from the spec, so
    the default network cannot drift from the one the bundled model was trained as."""
    from ..models.weights import read_spec
    from ..weights import bundled_path

    path = bundled_path(RECIPE_MODEL)
    if path is None:
        return {}
    spec = read_spec(path)
    if spec.arch != model:
        return {}
    return {k: v for k, v in spec.options.items() if k != "input_size"}  # input_size follows the data


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)   # one or more data sets (mixed into one)
    ferplus: str | None = None                      # FER+ votes for a FER-2013 csv
    classes: str | None = None                      # class set name or comma list; default: the data's
    train_split: str | None = None                  # default: Training / train
    val_split: str | None = None                    # default: PublicTest / val / test (never PrivateTest)
    val_fraction: float = 0.1                       # held out (stratified, seeded) when the data has no validation split
    val_seed: int = 0                               # the hold-out's seed: apart from seed, so runs of other seeds validate alike
    class_map: Any = None                           # numbered labels -> classes: "1=surprise,...", a YAML file, a preset
    exclude: str | None = None                      # `emolens data audit` flagged.csv: training rows left out
    exclude_reasons: str | None = None              # with exclude: only rows flagged for these reasons (comma list)
    model: str = "vgg_fer"
    model_options: dict[str, Any] | None = None     # None: the recipe's (for vgg_fer: the bundled model's network)
    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "onecycle"
    label_smoothing: float = 0.1
    soft_label_weight: float = 0.0                  # 0: hard labels; 1: vote distributions only
    fer2013_label_weight: float = 0.0               # with ferplus: share of the FER-2013 label in each soft label
    logit_adjust: float = 0.0                       # logit-adjusted loss: tau x log(training prior) added in the loss
    teacher: str | None = None                      # distillation: a model whose probabilities are the soft labels
    teacher_tta: str = "flip"                       # the teacher's test-time augmentation: none, flip, ten_crop
    teacher_mix: float = 1.0                        # with ferplus: the teacher's share of each soft label (rest: votes)
    balance: str = "none"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mean: float = 0.5
    std: float = 0.25
    early_stopping: int = 0                         # patience in epochs; 0 = off
    export_checkpoint: str = "best"                 # which checkpoint becomes the model: best (val_acc) or last
    keep_epochs: int = 0                            # also keep the last N epochs' checkpoints (epochNN.ckpt), to average
    seed: int = 0
    precision: str = "auto"                         # auto (see resolve_precision), 32, bf16-mixed, 16-mixed
    threads: int | None = None                      # torch CPU threads; None = torch's default
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"                          # e.g. "ddp" for several GPUs or nodes
    out: str = "runs"
    name: str = ""
    limit_train_batches: float | int = 1.0          # for smoke tests
    # model zoo: fine-tuning (docs/zoo.md)
    pretrained: Any = None                          # bundled name | .safetensors | hub | package | URL | {swin: .., resnet: ..}
    freeze_epochs: int = 0                          # train only the head for this many epochs, then all
    backbone_lr_scale: float = 1.0                  # the backbone's learning rate = lr x this
    # adversarial regularisation in the spirit of Neural Structured Learning (0 = off)
    adversarial_multiplier: float = 0.0             # weight of the loss on perturbed inputs (slides: 0.3)
    adversarial_step: float = 0.01                  # perturbation size, in normalised input units
    adversarial_norm: str = "l2"                    # gradient normalisation: l2 (NSL's default), inf or sign

    def validate(self) -> "TrainConfig":
        if not self.data:
            raise EmolensError("no training data: give --data PATH (or data: in the config file)")
        if self.model_options is None:
            self.model_options = recipe_options(self.model)
        if not 0 < self.val_fraction < 1:
            raise EmolensError(f"val_fraction must lie between 0 and 1 (exclusive), not {self.val_fraction}")
        if self.optimizer not in OPTIMIZERS:
            raise EmolensError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise EmolensError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0 <= self.soft_label_weight <= 1:
            raise EmolensError("soft_label_weight must lie in [0, 1]")
        if not 0 <= self.fer2013_label_weight <= 1:
            raise EmolensError("fer2013_label_weight must lie in [0, 1]")
        if self.fer2013_label_weight and not self.ferplus:
            raise EmolensError("fer2013_label_weight needs ferplus votes (it mixes FER-2013 labels into FER+ targets)")
        if self.logit_adjust < 0:
            raise EmolensError("logit_adjust must not be negative")
        if not 0 <= self.teacher_mix <= 1:
            raise EmolensError("teacher_mix must lie in [0, 1]")
        if self.teacher and self.ferplus and self.teacher_mix == 1:
            raise EmolensError("teacher and ferplus both give soft labels: set teacher_mix below 1 to mix them "
                               "(the teacher's share), or use one of them")
        if self.teacher and self.soft_label_weight == 0:
            raise EmolensError("teacher needs soft_label_weight above 0 (the share of the teacher in each target)")
        if self.teacher:
            from ..models.weights import TTA_MODES, tta_mode

            try:
                self.teacher_tta = tta_mode(self.teacher_tta)
            except EmolensError:
                raise EmolensError(f"unknown teacher_tta {self.teacher_tta!r}; choose one of {', '.join(TTA_MODES)}") from None
        self.precision = str(self.precision)
        if self.precision not in PRECISIONS:
            raise EmolensError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.export_checkpoint not in ("best", "last"):
            raise EmolensError(f"export_checkpoint must be best or last, not {self.export_checkpoint!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise EmolensError("epochs and batch_size must be positive")
        if self.keep_epochs < 0:
            raise EmolensError(f"keep_epochs must not be negative, not {self.keep_epochs}")
        if self.adversarial_multiplier < 0 or self.adversarial_step < 0:
            raise EmolensError("adversarial_multiplier and adversarial_step must not be negative")
        if self.adversarial_norm not in ADVERSARIAL_NORMS:
            raise EmolensError(f"unknown adversarial_norm {self.adversarial_norm!r}; choose one of "
                               f"{', '.join(ADVERSARIAL_NORMS)}")
        if self.freeze_epochs < 0 or self.backbone_lr_scale < 0:
            raise EmolensError("freeze_epochs and backbone_lr_scale must not be negative")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / (self.name or self.model)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EmolensError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        if isinstance(d.get("data"), str):
            d["data"] = [d["data"]]
        aug = d.get("augment") or {}
        aug_known = {f.name for f in dataclasses.fields(AugmentConfig)}
        bad = sorted(set(aug) - aug_known)
        if bad:
            raise EmolensError(f"unknown augment key(s) {', '.join(bad)}; known: {', '.join(sorted(aug_known))}")
        d["augment"] = AugmentConfig(**aug)
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """A config file; ``_base_: other.yaml`` (a path relative to the file, or a list of them)
        starts from those files' keys, which this file's keys then override (``augment`` merged
        key by key)."""
        return cls.from_dict(load_composed(Path(path)))

    def preprocess(self, input_size: int):
        """The :class:`~emolens.models.weights.Preprocess` of a model trained on ``input_size`` faces
        with this config: stored in its spec, and the normalisation training itself uses."""
        from ..models.weights import Preprocess

        crop = self.augment.crop if self.augment.crop < input_size else 0
        return Preprocess(input_size, 1, self.mean, self.std, crop)

    def save(self, path: Path) -> None:
        from ..files import atomic_write_bytes

        atomic_write_bytes(path, yaml.safe_dump(self.to_dict(), sort_keys=False).encode())


def load_composed(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A YAML config with its ``_base_`` files merged under it (depth first, cycles refused)."""
    path = path.resolve()
    if path in seen:
        raise EmolensError(f"{path}: _base_ includes itself ({' -> '.join(p.name for p in seen + (path,))})")
    raw = read_yaml_mapping(path, "config")
    bases = raw.pop("_base_", None) or []
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        base_path = path.parent / str(base)
        if not base_path.is_file():
            raise EmolensError(f"{path}: _base_ file {base} not found")
        merged = merge_config(merged, load_composed(base_path, seen + (path,)))
    return merge_config(merged, raw)


def merge_config(base: dict, over: dict, merge_keys: tuple[str, ...] | None = None) -> dict:
    """``over`` on top of ``base`` (both left as they are): a mapping in ``over`` is merged key by
    key into the base's mapping of the same key when that key is in ``merge_keys`` (None: every
    mapping, as for ``_base_`` files and flags), else it replaces it whole, as does any other value."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and (merge_keys is None or key in merge_keys):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(base: dict, options: dict) -> dict:
    """Config keys ``options`` (flags, Python keywords) over a config ``base``: another ``model``
    drops the base's ``model_options`` (they belong to its model), and options given where the
    config has none change the model's recipe options (:func:`recipe_options`) one key at a time."""
    base = dict(base)
    if options.get("model") and options["model"] != base.get("model"):
        base["model_options"] = None
    if options.get("model_options") and base.get("model_options") is None:
        base["model_options"] = recipe_options(options.get("model") or base.get("model") or "vgg_fer")
    return merge_config(base, options)
