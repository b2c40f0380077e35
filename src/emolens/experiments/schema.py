"""Run a list of training runs and ensembles from one YAML file and tabulate them.

An experiment file::

    name: balancing
    title: Compact CNN with class balancing on FER-2013
    description: One paragraph that goes above the table.
    out: runs/experiments/balancing          # run folders (default runs/experiments/NAME)
    table: docs/experiments/balancing.md     # the markdown table (default OUT/results.md)
    base: ../fer2013_default.yaml            # a train config file (relative to this file) or a mapping
    set: {model: compact_cnn, epochs: 30}    # train config keys over the base, for every run
                                             # (and model_label / method / data_label texts)
    grid:                                    # every combination becomes a run
      balance: [none, oversample, smote, adasyn, class_weights]
    runs:                                    # and/or runs listed one by one
      - {label: vgg-adv, model: vgg_fer, adversarial_multiplier: 0.3}
      - {label: vote, kind: ensemble, members: [vgg-adv, compact_cnn-none]}
    schedule:                                # a shorter schedule for every run (or from the CLI)
      epochs: 2
      limit_train_batches: 20
      max_train_rows: 3000                   # stratified subset of the training split
      max_val_rows: 1000                     # stratified subset of the validation split

A run's keys replace the base's (``model_options`` whole; ``augment`` key by key). A grid value
that is a mapping sets several keys at once (``backbone: [{model: resnet50,
pretrained: hub}, ...]``). A run's extra keys: ``label`` (its folder), ``model_label``,
``method`` and ``data_label`` (the table's text), for ``kind: ensemble``: ``members`` (labels
of earlier runs) and ``objective`` (``nll`` or ``accuracy``), and for ``kind: average`` (one network
whose weights are the mean of earlier runs', batch-norm statistics measured again on the training
split; ``emolens average``): ``members``, optionally ``weights`` (one per member) and ``last_epochs: N``
(average each member's last N epoch checkpoints, which the member kept with ``keep_epochs``, instead of
its exported model).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.config import merge_config
from ..errors import EmolensError

#: A run's keys replace the base's; only ``augment`` is merged key by key (``model_options`` belong
#: to one model and are replaced whole).
RUN_MERGE = ("augment",)

EXTRA_KEYS = ("label", "model_label", "method", "data_label", "kind", "members", "objective", "weights",
              "last_epochs")
SCHEDULE_KEYS = ("epochs", "limit_train_batches", "max_train_rows", "max_val_rows", "note")


@dataclass
class Schedule:
    epochs: int | None = None
    limit_train_batches: int | float | None = None
    max_train_rows: int | None = None
    max_val_rows: int | None = None
    note: str = ""

    @property
    def shortened(self) -> bool:
        return any(v is not None for v in (self.epochs, self.limit_train_batches, self.max_train_rows,
                                           self.max_val_rows))

    def describe(self) -> str:
        parts = []
        if self.epochs is not None:
            parts.append(f"{self.epochs} epoch(s) per run")
        if self.limit_train_batches is not None:
            parts.append(f"at most {self.limit_train_batches} training batches per epoch")
        if self.max_train_rows is not None:
            parts.append(f"a stratified subset of at most {self.max_train_rows} training rows")
        if self.max_val_rows is not None:
            parts.append(f"a stratified subset of at most {self.max_val_rows} validation rows")
        return "; ".join(parts)


@dataclass
class RunSpec:
    label: str
    kind: str = "train"
    config: dict = field(default_factory=dict)
    model_label: str = ""
    method: str = ""
    data_label: str = ""
    members: list[str] = field(default_factory=list)
    objective: str = "nll"
    weights: list[float] | None = None
    last_epochs: int = 0


@dataclass
class RunResult:
    label: str
    model: str
    method: str
    data: str
    accuracy: float | None = None
    macro_f1: float | None = None
    seconds: float = 0.0
    epochs: int = 0
    n_val: int = 0
    run_dir: str = ""
    weights: str = ""
    status: str = "ok"
    split: str = ""         # the validation split the row was scored on


@dataclass
class Experiment:
    name: str
    title: str
    description: str
    out: Path
    table: Path
    runs: list[RunSpec]
    schedule: Schedule
    source: str = ""


# ------------------------------------------------------------------------------------ loading


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(text)).strip("-") or "run"


def _value_text(value) -> str:
    if isinstance(value, dict):
        return str(value.get("label") or value.get("model") or "-".join(_value_text(v) for v in value.values()))
    return str(value)


def load_experiment(path: str | Path, schedule_overrides: dict | None = None) -> Experiment:
    """Read and check an experiment file; ``schedule_overrides`` (from the CLI) win over its schedule."""
    from ..engine.config import TrainConfig, read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, "experiment")
    known = {"name", "title", "description", "out", "table", "base", "set", "grid", "runs", "schedule"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EmolensError(f"{path}: unknown experiment key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    name = str(raw.get("name") or path.name.split(".")[0])

    base = raw.get("base") or {}
    if isinstance(base, str):
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        base = TrainConfig.load(base_path).to_dict()
    elif not isinstance(base, dict):
        raise EmolensError(f"{path}: base must be a train config path or a mapping")
    base = merge_config(TrainConfig().to_dict(), base, RUN_MERGE)
    over = dict(raw.get("set") or {})
    shared_text = {k: over.pop(k) for k in ("model_label", "method", "data_label") if k in over}
    base = merge_config(base, over, RUN_MERGE)

    specs: list[RunSpec] = []
    grid = raw.get("grid") or {}
    if grid:
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise EmolensError(f"{path}: grid must map keys to non-empty lists")
        axes = list(grid)
        for combo in itertools.product(*(grid[a] for a in axes)):
            entry: dict = {}
            for axis, value in zip(axes, combo):  # a mapping's own label only names the run
                entry.update({k: v for k, v in value.items() if k != "label"} if isinstance(value, dict)
                             else {axis: value})
            entry["label"] = "-".join(_value_text(v) for v in combo)
            specs.append(_run_spec({**shared_text, **entry}, base, path))
    for entry in raw.get("runs") or []:
        if not isinstance(entry, dict):
            raise EmolensError(f"{path}: each run must be a mapping, got {entry!r}")
        specs.append(_run_spec({**shared_text, **entry}, base, path))
    if not specs:
        raise EmolensError(f"{path}: no runs (give grid: or runs:)")
    labels = [s.label for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise EmolensError(f"{path}: run labels must be unique; repeated: {', '.join(dupes)}")
    for s in specs:
        if s.kind in ("ensemble", "average"):
            earlier = labels[:labels.index(s.label)]
            missing = [m for m in s.members if m not in earlier]
            if len(s.members) < 2 or missing:
                raise EmolensError(f"{path}: {s.kind} {s.label} needs at least two members among the runs "
                                   f"listed before it; not found: {', '.join(missing) or '(fewer than two)'}")
            if s.weights is not None and len(s.weights) != len(s.members):
                raise EmolensError(f"{path}: {s.kind} {s.label} has {len(s.weights)} weights for "
                                   f"{len(s.members)} members")

    sched_raw = dict(raw.get("schedule") or {})
    bad = sorted(set(sched_raw) - set(SCHEDULE_KEYS))
    if bad:
        raise EmolensError(f"{path}: unknown schedule key(s) {', '.join(bad)}; known: {', '.join(SCHEDULE_KEYS)}")
    sched_raw.update({k: v for k, v in (schedule_overrides or {}).items() if v is not None})
    schedule = Schedule(**sched_raw)
    out = Path(raw.get("out") or Path("runs") / "experiments" / name)
    table = Path(raw.get("table") or out / "results.md")
    return Experiment(name=name, title=str(raw.get("title") or name), description=str(raw.get("description") or ""),
                      out=out, table=table, runs=specs, schedule=schedule, source=str(path))


def _run_spec(entry: dict, base: dict, path: Path) -> RunSpec:
    from ..engine.config import TrainConfig

    extras = {k: entry[k] for k in EXTRA_KEYS if k in entry}
    keys = {k: v for k, v in entry.items() if k not in EXTRA_KEYS}
    kind = extras.get("kind", "train")
    if kind not in ("train", "ensemble", "average"):
        raise EmolensError(f"{path}: run kind must be train, ensemble or average, got {kind!r}")
    if "model" in keys and keys["model"] != base.get("model") and "model_options" not in keys:
        keys["model_options"] = {}  # the base's options belong to the base's model
    cfg = merge_config(base, keys, RUN_MERGE)
    if isinstance(cfg.get("data"), str):
        cfg["data"] = [cfg["data"]]
    if kind == "train":
        try:
            TrainConfig.from_dict(cfg)  # unknown keys are reported now, not after an hour of training
        except EmolensError as e:
            raise EmolensError(f"{path}: run {extras.get('label', '?')}: {e}") from None
    label = _slug(extras.get("label") or cfg.get("model", "run"))
    return RunSpec(label=label, kind=kind, config=cfg, model_label=str(extras.get("model_label", "")),
                   method=str(extras.get("method", "")), data_label=str(extras.get("data_label", "")),
                   members=[_slug(m) for m in extras.get("members", [])], objective=str(extras.get("objective", "nll")),
                   weights=[float(w) for w in extras["weights"]] if extras.get("weights") else None,
                   last_epochs=_last_epochs(extras, kind, path))


def _last_epochs(extras: dict, kind: str, path: Path) -> int:
    value = extras.get("last_epochs", 0)
    if value and kind != "average":
        raise EmolensError(f"{path}: run {extras.get('label', '?')}: last_epochs belongs to kind: average rows")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EmolensError(f"{path}: run {extras.get('label', '?')}: last_epochs must be a whole number of "
                           f"epochs (0 or more), not {value!r}")
    return value
