"""``emolens train``, ``evaluate``, ``average``, ``models`` and ``export``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import key_values, parse_value
from ..errors import EmolensError

#: Flags of ``emolens train`` that set the config key of the same name.
TRAIN_FLAGS = (
    "ferplus", "classes", "train_split", "val_split", "model", "epochs", "batch_size", "optimizer", "lr",
    "weight_decay", "momentum", "schedule", "label_smoothing", "soft_label_weight", "teacher", "balance", "early_stopping",
    "seed", "precision", "threads", "out", "name", "accelerator", "devices", "strategy", "num_nodes",
    "exclude", "exclude_reasons",
)


def build_train_config(args, base: dict | None = None):
    """The config file (or ``base``) with the command-line flags applied on top."""
    from .config import TrainConfig

    if base is None:
        base = TrainConfig.load(args.config).to_dict() if args.config else TrainConfig().to_dict()
    if args.data:
        base["data"] = list(args.data)
    for key in TRAIN_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            base[key] = value
    if args.model_option:
        base["model_options"] = {**base.get("model_options", {}), **key_values(args.model_option, "--model-option")}
    for key, value in key_values(args.set, "--set").items():
        target = base
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise EmolensError(f"--set {key}: {part!r} is not a section of the config")
            target = target[part]
        target[parts[-1]] = value
    return TrainConfig.from_dict(base)


def cmd_train(args) -> int:
    from .config import TrainConfig
    from .train import train

    if args.resume:
        # The run's saved config wins; flags given now (say a larger --epochs) apply on top.
        if args.config:
            first = TrainConfig.load(args.config)
            out, name = args.out or first.out, args.name or first.name
        else:
            out, name = args.out or "runs", args.name or args.model or "vgg_fer"
        saved = TrainConfig(out=out, name=name).run_dir / "config.yaml"
        if not saved.exists():
            raise EmolensError(f"--resume: no run at {saved.parent} (its config.yaml is missing); "
                               "give the same --out and --name (or --config) as the first run")
        base = TrainConfig.load(saved).to_dict()
        args.config = None
        cfg = build_train_config(args, base)
    else:
        cfg = build_train_config(args)
    result = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate

    metrics = evaluate(args.model, args.data, ferplus=args.ferplus, split=args.split, classes=args.classes,
                       tta=args.tta, backend=args.backend, detect=args.detect, detector=args.detector,
                       out_dir=args.out_dir, raw=args.raw)
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
    from ..data import load_dataset
    from ..models.weights import save_model
    from .average import average_command, average_models, write_record

    if args.weights and len(args.weights) != len(args.members):
        raise EmolensError(f"--weights: {len(args.weights)} weights for {len(args.members)} models")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise EmolensError(f"--out {out}: give a .safetensors path (the spec is written beside it)")
    faces = None
    if args.data:
        faces = load_dataset(args.data).split(args.split).images
        print(f"batch-norm statistics from {len(faces):,} faces of {args.split}")
    model, spec = average_models(args.members, args.weights, faces, name=args.name or out.stem)
    weights = save_model(model, spec, out)
    command = average_command(args.members, out, args.weights, args.data, args.split, args.name)
    record = write_record(weights, args.members, args.weights, args.data, args.split,
                          0 if faces is None else len(faces), command)
    print(f"averaged {len(args.members)} models into {weights} (how: {record.name})")
    return 0


def cmd_calibrate(args) -> int:
    from ..evaluation.calibration import ECE_BINS, calibrate_model

    cal, spec = calibrate_model(args.model, args.data, ferplus=args.ferplus, split=args.split,
                                prior_split=args.prior_split, operating_point=not args.no_operating_point,
                                max_accuracy_drop=args.max_accuracy_drop, out=args.out, plot=args.plot,
                                objective=args.objective, min_accuracy=args.min_accuracy)
    print(f"temperature {cal.temperature:.3f}; operating point strength per class (bias = -tau log prior): "
          + ", ".join(f"{t:+.1f}" for t in cal.strength))
    print(f"ECE ({ECE_BINS} bins) on {cal.fitted_on}: {cal.ece_before:.4f} raw -> {cal.ece_after:.4f} calibrated "
          f"({cal.ece_cross_fitted:.4f} fitted on one half, measured on the other)")
    print(f"wrote {spec}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def cmd_retrain_head(args) -> int:
    from .head import retrain_head

    r = retrain_head(args.model, args.data, args.out, ferplus=args.ferplus, classes=args.classes,
                     balance=args.balance, c=args.c, seed=args.seed, name=args.name)
    print(f"new last layer fitted on {r.train_rows:,} faces x 2 (mirror images), {r.balanced_rows:,} rows after "
          f"balancing, in {r.seconds:.0f} s; validation accuracy {r.val_accuracy:.4f}, macro-F1 {r.val_macro_f1:.4f}; "
          f"wrote {r.weights}")
    return 0


def cmd_models(args) -> int:
    from ..models.registry import count_parameters, create_model, list_models
    from ..weights import DEFAULT_MODEL, bundled_names

    print(f"{'architecture':<22} {'params (7 cl.)':>14} {'input':>9}  source")
    for info in list_models():
        try:
            params = f"{count_parameters(create_model(info.name, num_classes=7)):,}"
        except Exception as e:  # an optional extra not installed
            params = f"needs {', '.join(info.needs) or type(e).__name__}"
        size = f"{info.channels}x{info.input_size}x{info.input_size}"
        print(f"{info.name:<22} {params:>14} {size:>9}  {info.source}")
    names = bundled_names()
    if names:
        from ..models.weights import read_spec
        from ..weights import bundled_path

        print("\nbundled models (use with --model NAME):")
        for name in names:
            spec = read_spec(bundled_path(name))
            acc = spec.metrics.get("accuracy")
            mark = " (default)" if name == DEFAULT_MODEL else ""
            acc_txt = f"{spec.metrics.get('split', '')} accuracy {acc:.2%}" if acc is not None else ""
            print(f"  {name:<14} {spec.arch:<12} {len(spec.classes)} classes  {acc_txt}{mark}")
    return 0


def cmd_export(args) -> int:
    from ..models.weights import load_model
    from ..runtime.classifier import export_onnx
    from ..runtime.resolve import resolve_weights

    model, spec = load_model(resolve_weights(args.model))
    out = Path(args.out or f"{spec.name}.onnx")
    export_onnx(model, spec, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); input 'faces' (N, {spec.preprocess.channels}, "
          f"{spec.preprocess.input_size}, {spec.preprocess.input_size}), mean {spec.preprocess.mean}, "
          f"std {spec.preprocess.std}; classes {', '.join(spec.classes)}")
    return 0


def register(sub) -> None:
    t = sub.add_parser("train", help="train a registered model (Lightning; resumable)")
    t.add_argument("--config", help="YAML config (flags override it)")
    t.add_argument("--data", nargs="+", help="data set path(s); several are mixed into one training set")
    t.add_argument("--ferplus", help="FER+ votes file: train on the 8 FER+ classes")
    t.add_argument("--classes", help="class subset: basic5, ferplus, fer2013 or a comma list")
    t.add_argument("--train-split", dest="train_split")
    t.add_argument("--val-split", dest="val_split")
    t.add_argument("--exclude", metavar="FILE", help="leave out the training rows this file names (row_id or path "
                   "column: `emolens data audit`'s flagged.csv); the validation split is not changed")
    t.add_argument("--exclude-reasons", dest="exclude_reasons", metavar="LIST",
                   help="with --exclude: only rows flagged for these reasons, e.g. exact_duplicate,no_face (default: all)")
    t.add_argument("--model", help="registered architecture (see `emolens models`)")
    t.add_argument("--model-option", action="append", metavar="KEY=VALUE", help="architecture option, repeatable")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", dest="batch_size", type=int)
    t.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], help="sgd uses Nesterov momentum")
    t.add_argument("--lr", type=float)
    t.add_argument("--weight-decay", dest="weight_decay", type=float)
    t.add_argument("--momentum", type=float)
    t.add_argument("--schedule", choices=["none", "plateau", "cosine", "onecycle"])
    t.add_argument("--label-smoothing", dest="label_smoothing", type=float)
    t.add_argument("--soft-label-weight", dest="soft_label_weight", type=float,
                   help="0 = majority labels, 1 = FER+ vote distributions (or the teacher's), between = mixed")
    t.add_argument("--teacher", metavar="MODEL",
                   help="distil: this model's probabilities (name, .safetensors or NAME.ensemble.yaml) are the "
                        "soft labels; needs --soft-label-weight")
    t.add_argument("--balance", choices=["none", "oversample", "smote", "adasyn", "class_weights"])
    t.add_argument("--early-stopping", dest="early_stopping", type=int, metavar="PATIENCE")
    t.add_argument("--seed", type=int)
    t.add_argument("--precision", help="auto (default: bf16-mixed where the hardware has bfloat16, else 32), bf16-mixed, 16-mixed or 32")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--accelerator", help="auto, cpu, gpu")
    t.add_argument("--devices", type=parse_value, help="number of devices, or auto")
    t.add_argument("--num-nodes", dest="num_nodes", type=int)
    t.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    t.add_argument("--out", help="parent folder of run folders (default runs)")
    t.add_argument("--name", help="run name (default: the model name)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. augment.rotation=10")
    t.add_argument("--resume", action="store_true", help="continue the run in --out/--name from its last checkpoint")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a model on a data set split, also on data sets whose classes "
                       "differ from the model's (cross-data-set evaluation)")
    e.add_argument("--model", default="default", help="bundled name, default, or a .safetensors path")
    e.add_argument("--data", required=True, nargs="+")
    e.add_argument("--ferplus", help="FER+ votes: evaluate against FER+ majority labels")
    e.add_argument("--split", help="Training, PublicTest, PrivateTest, or a folder split (default: a test split; "
                   "a folder without splits, ROOT/<class>/*, is used whole)")
    e.add_argument("--classes", help="the evaluation class set (a name such as fer2013, or a comma list): rows of "
                   "other classes are left out and counted, the argmax is taken over these classes "
                   "(default: all of the model's classes)")
    e.add_argument("--tta", nargs="?", const="flip", default=None, metavar="MODE",
                   help="test-time augmentation: flip (the default MODE: the face and its mirror image) or "
                   "ten_crop (five crops and their mirror images); without --tta/--no-tta: the model's own setting")
    e.add_argument("--no-tta", dest="tta", action="store_const", const="none", help="one pass per face")
    e.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    e.add_argument("--raw", action="store_true", help="the network's own probabilities, without the model's stored "
                   "calibration and operating point (which follow the training set's class frequencies)")
    e.add_argument("--detect", action="store_true", help="run the full pipeline (detect, align, classify) on "
                   "uncropped images of an image folder")
    e.add_argument("--detector", default=None, help="face detector for --detect")
    e.add_argument("--json", help="write the metrics JSON here")
    e.add_argument("--out-dir", dest="out_dir", help="write report.txt and confusion_matrix.png here")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("calibrate", help="fit a model's calibration (vector scaling, temperature) and operating point on a "
                       "validation split and store them in its spec",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    c.add_argument("--objective", default="balanced_accuracy", choices=["balanced_accuracy", "macro_f1"],
                   help="what the operating point maximises on the validation split")
    c.add_argument("--min-accuracy", dest="min_accuracy", type=float, default=None,
                   help="the operating point keeps validation accuracy at least this (a fraction)")
    c.add_argument("--out", help="write a calibrated copy here (NAME.safetensors + spec) instead of updating the "
                   "model's own spec")
    c.add_argument("--plot", help="write a reliability diagram (PNG) here")
    c.set_defaults(func=cmd_calibrate)

    h = sub.add_parser("retrain-head", help="fit a model's last layer again on its frozen features, class-balanced "
                       "(for its own classes or another class set)", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    h.add_argument("--model", default="default", help="bundled name, default, or a .safetensors path")
    h.add_argument("--data", required=True, nargs="+")
    h.add_argument("--ferplus", help="FER+ votes for --data (FER+ classes and majority labels)")
    h.add_argument("--classes", help="class subset of the data")
    h.add_argument("--balance", default="oversample", choices=["oversample", "none"])
    h.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    h.add_argument("--seed", type=int, default=0)
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

    m = sub.add_parser("models", help="list registered architectures and bundled models")
    m.set_defaults(func=cmd_models)

    x = sub.add_parser("export", help="export a model to ONNX")
    x.add_argument("--model", default="default")
    x.add_argument("--out", help="output .onnx path")
    x.set_defaults(func=cmd_export)
