"""``emolens train``, ``evaluate``, ``average``, ``models`` and ``export``."""

from __future__ import annotations

import argparse

from . import key_values, parse_value
from ..errors import EmolensError
from .vision import add_precision


#: Flags of ``emolens train`` that set the config key of the same name.
TRAIN_FLAGS = (
    "ferplus", "classes", "train_split", "val_split", "val_fraction", "val_seed", "class_map", "pretrained", "model",
    "epochs", "batch_size", "optimizer", "lr", "weight_decay", "momentum", "schedule", "label_smoothing", "soft_label_weight", "teacher", "balance", "early_stopping",
    "seed", "precision", "threads", "out", "name", "accelerator", "devices", "strategy", "num_nodes",
    "exclude", "exclude_reasons",
)


def train_overrides(args) -> dict:
    """The config keys the command line sets: the flags given and ``--set`` (dotted keys into sections)."""
    out: dict = {"data": list(args.data)} if args.data else {}
    for key in TRAIN_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    if args.model_option:
        out["model_options"] = key_values(args.model_option, "--model-option")
    for key, value in key_values(args.set, "--set").items():
        target = out
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise EmolensError(f"--set {key}: {part!r} is not a section of the config")
        target[parts[-1]] = value
    return out


def cmd_train(args) -> int:
    from ..tasks import train

    result = train(args.config, resume=args.resume, progress=not args.no_progress, **train_overrides(args))
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from ..tasks import evaluate

    metrics = evaluate(args.model, args.data, ferplus=args.ferplus, split=args.split, classes=args.classes,
                       tta=args.tta, backend=args.backend, precision=args.precision, detect=args.detect, detector=args.detector,
                       out_dir=args.out_dir, raw=args.raw, class_map=args.class_map)
    from ..evaluation.crossdata import summary

    print(metrics.report)
    print(summary(metrics))
    line = f"accuracy {metrics.accuracy:.4f}  macro-F1 {metrics.macro_f1:.4f}  weighted-F1 {metrics.weighted_f1:.4f}  n={metrics.n}"
    if "detection_rate" in metrics.extra:
        line += f"  detection rate {metrics.extra['detection_rate']:.4f}"
    print(line)
    if args.json:
        metrics.write_json(args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_average(args) -> int:
    from ..tasks import average

    r = average(args.members, args.out, weights=args.weights, data=args.data, split=args.split, name=args.name)
    if r.faces:
        print(f"batch-norm statistics from {r.faces:,} faces of {args.split}")
    print(f"averaged {len(args.members)} models into {r.weights} (how: {r.record.name})")
    return 0


def cmd_calibrate(args) -> int:
    from ..evaluation.calibration import ECE_BINS
    from ..tasks import calibrate

    r = calibrate(args.model, args.data, ferplus=args.ferplus, split=args.split, prior_split=args.prior_split,
                  operating_point=not args.no_operating_point, max_accuracy_drop=args.max_accuracy_drop,
                  objective=args.objective, min_accuracy=args.min_accuracy, out=args.out, plot=args.plot,
                  ship_rule=not args.no_ship_rule)
    cal, spec = r.calibration, r.spec
    print(f"fitted on {cal.fitted_on}; out of sample: {r.report.to_dict()['protocol']}")
    print(r.report.table())
    print(f"stored: {cal.steps()}" + ("" if args.no_ship_rule or r.report.shipped is r.report.stages[-1] else
                                       " (the steps that did not ship are left out; --no-ship-rule stores them)"))
    if cal.strength and any(cal.strength):
        print("operating point strength per class (bias = -tau log prior): " + ", ".join(f"{t:+.1f}" for t in cal.strength))
    print(f"temperature {cal.temperature:.3f}; ECE ({ECE_BINS} bins) one pass: {cal.ece_before:.4f} raw -> "
          f"{cal.ece_after:.4f} in sample, {cal.ece_cross_fitted:.4f} out of sample")
    print(f"wrote {spec}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def cmd_retrain_head(args) -> int:
    from ..tasks import retrain_head

    r = retrain_head(args.model, args.data, args.out, ferplus=args.ferplus, classes=args.classes,
                     balance=args.balance, c=args.c, seed=args.seed, name=args.name)
    print(f"new last layer fitted on {r.train_rows:,} faces x 2 (mirror images), {r.balanced_rows:,} rows after "
          f"balancing, in {r.seconds:.0f} s; validation accuracy {r.val_accuracy:.4f}, macro-F1 {r.val_macro_f1:.4f}; "
          f"wrote {r.weights}")
    return 0


def cmd_models(args) -> int:
    """The bundled models (read from their specs: the base install lists them), then the registered
    architectures with their parameter counts (building them needs torch, the [train] extra)."""
    from ..models.registry import list_models
    from ..models.weights import read_spec
    from ..runtime.quantize import describe as describe_int8
    from ..weights import DEFAULT_MODEL, bundled_names, bundled_path

    print("bundled models (use with --model NAME):")
    names = bundled_names()
    width = max(map(len, names), default=0)
    for name in names:
        spec = read_spec(bundled_path(name))
        mark = " (default)" if name == DEFAULT_MODEL else ""
        print(f"  {name:<{width}} {spec.arch:<8} {len(spec.classes)} classes  {metrics_text(spec.reported_metrics())}; "
              f"{describe_int8(spec.int8)}{mark}")
    try:
        import torch  # noqa: F401  (the architectures register themselves as torch modules)
    except ImportError:
        from ..errors import install_hint

        print(f"\narchitectures to train: they need torch, {install_hint('train')}")
        return 0
    print(f"\n{'architecture':<22} {'params (7 cl.)':>14}  source")
    from . import EXTRA_MODULES

    packages = {m for modules in EXTRA_MODULES.values() for m in modules}
    problems: dict[str, str | None] = {}
    for info in list_models():
        for package in set(info.needs) & packages - set(problems):
            problems[package] = import_problem(package)
        print(f"{info.name:<22} {_parameter_text(info, problems):>14}  {info.source}")
    for problem in filter(None, problems.values()):
        print(problem)
    return 0


def import_problem(module: str) -> str | None:
    """Why ``module`` cannot be imported, in one line; None when it imports. Tells a package that
    is not installed from one that is but fails to import (timm without a working torchvision)."""
    import importlib

    from . import is_installed

    if not is_installed(module):
        return f"{module} is not installed: pip install 'emolens[zoo]' -c constraints.txt"
    try:
        importlib.import_module(module)
    except Exception as e:  # installed, but it (or a package it imports) is missing or broken
        text = f"{module} is installed but cannot import: {(str(e).splitlines() or [''])[0]} ({type(e).__name__})"
        if "torchvision" in str(e) or getattr(e, "name", "") == "torchvision":
            import torch

            text += f"; it needs a torchvision built for this torch ({torch.__version__})"
        return text
    return None


def metrics_text(m: dict) -> str:
    """``accuracy 84.01% one pass, 85.08% flip TTA (PublicTest, validation; as shipped: vector scaling +
    temperature; out of sample 83.93% / 84.97%)``: the out-of-sample part when the calibration was
    judged so (``emolens calibrate``: each step fitted on one half of the split, scored on the other)."""
    if "accuracy" not in m:
        return ""
    views = f"{m['accuracy']:.2%} one pass" + (f", {m['flip_accuracy']:.2%} flip TTA" if "flip_accuracy" in m else "")
    outside = [f"{m[k]:.2%}" for k in ("accuracy_out_of_sample", "flip_accuracy_out_of_sample") if k in m]
    oos = f"; out of sample {' / '.join(outside)}" if outside else ""
    how = f"as shipped: {m.get('steps', 'calibrated')}" if m["calibrated"] else "the raw network"
    return f"accuracy {views} ({m.get('split', '?')}, validation; {how}{oos})"


def _parameter_text(info, problems: dict[str, str | None]) -> str:
    from ..models.registry import count_parameters, create_model

    broken = [p for p in info.needs if problems.get(p)]
    if broken:
        return ", ".join(f"needs {p}" if " is not installed" in problems[p] else f"{p} fails" for p in broken)
    try:
        return f"{count_parameters(create_model(info.name, num_classes=7)):,}"
    except Exception as e:  # an ensemble without members, an option it lacks
        return f"needs {', '.join(info.needs) or type(e).__name__}"


def cmd_export(args) -> int:
    from ..tasks import export

    r = export(args.model, args.out)
    out, spec = r.path, r.spec
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); input 'faces' (N, {spec.preprocess.channels}, "
          f"{spec.preprocess.model_size}, {spec.preprocess.model_size}), mean {spec.preprocess.mean}, "
          f"std {spec.preprocess.std}; classes {', '.join(spec.classes)}; these, the calibration and the emolens "
          "version are in its metadata props (it loads without its JSON spec)")
    return 0


def register(sub) -> None:
    from ..engine.config import RECIPE_MODEL, TrainConfig

    d = TrainConfig()
    t = sub.add_parser("train", help="train a registered model on FER-2013, FER+, RAF-DB, an image folder or a CSV "
                       "of images (Lightning; resumable)",
                       description="Train an expression classifier. `emolens train --data FOLDER` trains the bundled "
                       f"model's network (the {RECIPE_MODEL} recipe) from scratch; add --pretrained {RECIPE_MODEL} to "
                       "fine-tune the bundled model instead (docs/training.md). Flags override --config; defaults "
                       "shown are those used without a config.")
    t.add_argument("--config", help="YAML config (flags override it; default: none, the values below)")
    t.add_argument("--data", nargs="+", help="data set path(s): a FER-2013 csv(.gz) or a folder holding one, an image "
                   "folder ROOT/<class>/* or ROOT/<split>/<class>/* of face crops, a RAF-DB folder (Image/ + EmoLabel/), "
                   "or a CSV of path,label[,split]; several are mixed into one training set (required)")
    t.add_argument("--ferplus", help="FER+ votes file: train on the 8 FER+ classes (default: none)")
    t.add_argument("--classes", help="class subset: basic5, ferplus, fer2013 or a comma list (default: all the "
                   "data's classes)")
    t.add_argument("--class-map", dest="class_map", metavar="MAP",
                   help="what numbered labels (folder names, CSV labels) mean: 1=surprise,2=fear,..., a YAML file of "
                   "label: class, or a preset: rafdb, affectnet, fer2013 (default: labels are class names; RAF-DB's "
                   "own numbering for a RAF-DB folder)")
    t.add_argument("--train-split", dest="train_split", help="the split to train on (default: Training / train)")
    t.add_argument("--val-split", dest="val_split", help="the split to validate on (default: PublicTest / val / "
                   "test; never PrivateTest unless named)")
    t.add_argument("--val-fraction", dest="val_fraction", type=float, metavar="F",
                   help="data without a validation split: hold out this share of each class "
                   f"(default: {d.val_fraction})")
    t.add_argument("--val-seed", dest="val_seed", type=int, help="seed of that hold-out; apart from --seed, so runs "
                   f"with other training seeds validate on the same faces (default: {d.val_seed})")
    t.add_argument("--exclude", metavar="FILE", help="leave out the training rows this file names (row_id or path "
                   "column: `emolens data audit`'s flagged.csv); the validation split is not changed (default: none)")
    t.add_argument("--exclude-reasons", dest="exclude_reasons", metavar="LIST",
                   help="with --exclude: only rows flagged for these reasons, e.g. exact_duplicate,no_face (default: all)")
    t.add_argument("--model", help=f"registered architecture, see `emolens models` (default: {d.model} with the "
                   f"bundled {RECIPE_MODEL} model's options)")
    t.add_argument("--model-option", action="append", metavar="KEY=VALUE", help="architecture option, repeatable; "
                   "changes one option of the recipe (default: none)")
    t.add_argument("--pretrained", metavar="NAME|FILE",
                   help="start from a bundled model (ferplus, fer2013) or an emolens .safetensors file of the same "
                   "architecture; the output layer's rows are carried over by class name (a class the model lacks starts "
                   "fresh; the load report says which); "
                   "timm backbones also take hub, package or a URL (default: none, random weights)")
    t.add_argument("--epochs", type=int, help=f"(default: {d.epochs})")
    t.add_argument("--batch-size", dest="batch_size", type=int, help=f"(default: {d.batch_size})")
    t.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help=f"sgd uses Nesterov momentum (default: {d.optimizer})")
    t.add_argument("--lr", type=float, help=f"peak learning rate (default: {d.lr})")
    t.add_argument("--weight-decay", dest="weight_decay", type=float, help=f"(default: {d.weight_decay})")
    t.add_argument("--momentum", type=float, help=f"for sgd (default: {d.momentum})")
    t.add_argument("--schedule", choices=["none", "plateau", "cosine", "onecycle"], help=f"(default: {d.schedule})")
    t.add_argument("--label-smoothing", dest="label_smoothing", type=float, help=f"(default: {d.label_smoothing})")
    t.add_argument("--soft-label-weight", dest="soft_label_weight", type=float,
                   help="0 = majority labels, 1 = FER+ vote distributions (or the teacher's), between = mixed "
                   f"(default: {d.soft_label_weight})")
    t.add_argument("--teacher", metavar="MODEL",
                   help="distil: this model's probabilities (name, .safetensors or NAME.ensemble.yaml) are the "
                        "soft labels; needs --soft-label-weight (default: none)")
    t.add_argument("--balance", choices=["none", "oversample", "smote", "adasyn", "class_weights"],
                   help=f"(default: {d.balance})")
    t.add_argument("--early-stopping", dest="early_stopping", type=int, metavar="PATIENCE",
                   help=f"stop after this many epochs without a better validation accuracy; 0 = off (default: {d.early_stopping})")
    t.add_argument("--seed", type=int, help=f"(default: {d.seed})")
    t.add_argument("--precision", help="auto (bf16-mixed where the hardware has bfloat16, else 32), bf16-mixed, "
                   f"16-mixed or 32 (default: {d.precision})")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    t.add_argument("--accelerator", help=f"auto, cpu, gpu (default: {d.accelerator})")
    t.add_argument("--devices", type=parse_value, help=f"number of devices, or auto (default: {d.devices})")
    t.add_argument("--num-nodes", dest="num_nodes", type=int, help=f"(default: {d.num_nodes})")
    t.add_argument("--strategy", help=f"Lightning strategy, e.g. ddp (default: {d.strategy})")
    t.add_argument("--out", help=f"parent folder of run folders (default: {d.out})")
    t.add_argument("--name", help="run name: the run folder is OUT/NAME (default: the model name)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. augment.rotation=10 "
                   "(default: none)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out/--name from its last checkpoint (default: off, a new run)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar; one line per epoch is still printed (default: a bar when the output is a terminal)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a model on a data set split, also on data sets whose classes "
                       "differ from the model's (cross-data-set evaluation)")
    e.add_argument("--model", default="default", help="bundled name, default, or a .safetensors path (default: default, "
                   "the bundled default model)")
    e.add_argument("--data", required=True, nargs="+", help="data set path(s), as for train (required)")
    e.add_argument("--ferplus", help="FER+ votes: evaluate against FER+ majority labels (default: none)")
    e.add_argument("--split", help="Training, PublicTest, PrivateTest, or a folder split (default: a test split; "
                   "a folder without splits, ROOT/<class>/*, is used whole)")
    e.add_argument("--class-map", dest="class_map", metavar="MAP",
                   help="numbered labels or folders -> classes: 1=surprise,2=fear,..., a YAML file, or a preset "
                   "(rafdb, affectnet, fer2013) (default: labels are class names)")
    e.add_argument("--classes", help="the evaluation class set (a name such as fer2013, or a comma list): rows of "
                   "other classes are left out and counted, the argmax is taken over these classes "
                   "(default: all of the model's classes)")
    e.add_argument("--tta", nargs="?", const="flip", default=None, metavar="MODE",
                   help="test-time augmentation: flip (the default MODE: the face and its mirror image) or "
                   "ten_crop (five crops and their mirror images) (default without --tta/--no-tta: the model's own setting)")
    e.add_argument("--no-tta", dest="tta", action="store_const", const="none", help="one pass per face (default: the model's own setting)")
    e.add_argument("--backend", default="onnx", choices=["onnx", "torch"], help="(default: onnx)")
    add_precision(e, "float")
    e.add_argument("--raw", action="store_true", help="the network's own probabilities, without the model's stored "
                   "calibration and operating point (which follow the training set's class frequencies) (default: off)")
    e.add_argument("--detect", action="store_true", help="run the full pipeline (detect, align, classify) on "
                   "uncropped images of an image folder (default: off; the images are face crops)")
    e.add_argument("--detector", default=None, help="face detector for --detect (default: retinaface)")
    e.add_argument("--json", help="write the metrics JSON here (default: not written)")
    e.add_argument("--out-dir", dest="out_dir", help="write report.txt and confusion_matrix.png here (default: not written)")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("calibrate", help="fit a model's calibration (vector scaling, temperature) and operating point on a "
                       "validation split and store them in its spec",
                       )
    c.add_argument("--model", default="default", help="bundled name, default, or a .safetensors path")
    c.add_argument("--data", required=True, nargs="+", help="the data set the model was trained for")
    c.add_argument("--ferplus", help="FER+ votes for --data (FER+ majority labels)")
    c.add_argument("--split", help="the validation split to fit on (default: PublicTest / val)")
    c.add_argument("--prior-split", dest="prior_split", help="the split whose class frequencies are the training "
                   "prior (default: Training / train)")
    c.add_argument("--no-operating-point", dest="no_operating_point", action="store_true",
                   help="fit the vector scaling and temperature only (no per-class logit adjustment)")
    c.add_argument("--max-accuracy-drop", dest="max_accuracy_drop", type=float, default=0.005,
                   help="the operating point may cost at most this much validation accuracy")
    c.add_argument("--objective", default="macro_f1", choices=["balanced_accuracy", "macro_f1"],
                   help="what the operating point maximises on the validation split")
    c.add_argument("--min-accuracy", dest="min_accuracy", type=float, default=None,
                   help="the operating point keeps validation accuracy at least this (a fraction)")
    c.add_argument("--no-ship-rule", dest="no_ship_rule", action="store_true",
                   help="store every step asked for, even one that does not pass the ship rule out of sample "
                   "(default: only the steps that win on accuracy or macro-F1, cross-fitted on two fixed halves of "
                   "the split, losing at most 0.3 points of the other)")
    c.add_argument("--out", help="write a calibrated copy here (NAME.safetensors + spec) instead of updating the "
                   "model's own spec")
    c.add_argument("--plot", help="write a reliability diagram (PNG) here")
    c.set_defaults(func=cmd_calibrate)

    h = sub.add_parser("retrain-head", help="fit a model's last layer again on its frozen features, class-balanced "
                       "(for its own classes or another class set)")
    h.add_argument("--model", default="default", help="bundled name, default, or a .safetensors path")
    h.add_argument("--data", required=True, nargs="+", help="data set path(s), as for train (required)")
    h.add_argument("--ferplus", help="FER+ votes for --data (FER+ classes and majority labels)")
    h.add_argument("--classes", help="class subset of the data")
    h.add_argument("--balance", default="oversample", choices=["oversample", "none"],
                   help="oversample: every class as often as the largest in the fit; none: as the data has them")
    h.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    h.add_argument("--seed", type=int, default=0, help="seed of the oversampling and the solver")
    h.add_argument("--name", help="the new model's name (default: the --out file's stem)")
    h.add_argument("--out", required=True, help="the new model, NAME.safetensors (spec beside it)")
    h.set_defaults(func=cmd_retrain_head)

    a = sub.add_parser("average", help="one model whose weights are the mean of several (model soup, SWA)")
    a.add_argument("members", nargs="+", metavar="MODEL", help="bundled names, .safetensors files, or a "
                   "finished run's checkpoints (RUN/checkpoints/*.ckpt); one architecture and class set")
    a.add_argument("--out", required=True, help="the averaged model, NAME.safetensors (spec beside it)")
    a.add_argument("--weights", nargs="+", type=float, help="one weight per model (default: equal)")
    a.add_argument("--data", nargs="+", help="training data whose faces re-measure the batch-norm statistics "
                   "(recommended: the mean of the members' statistics is not the mean network's)")
    a.add_argument("--split", default="Training", help="split of --data for the statistics (default: Training)")
    a.add_argument("--name", help="the model's name (default: the --out file name)")
    a.set_defaults(func=cmd_average)

    m = sub.add_parser("models", help="list registered architectures and bundled models",
                       description="The bundled models with the accuracy users get (as shipped, calibrated; "
                       "the split and the TTA named), then every registered architecture with its parameter "
                       "count for 7 classes, or what it needs that is missing.")
    m.set_defaults(func=cmd_models)

    x = sub.add_parser("export", help="export a model to ONNX")
    x.add_argument("--model", default="default", help="bundled name, default, or a .safetensors path")
    x.add_argument("--out", help="output .onnx path (default: NAME.onnx in the working folder)")
    x.set_defaults(func=cmd_export)
