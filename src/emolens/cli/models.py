"""``emolens ensemble tune`` and ``emolens ensemble pack``."""

from __future__ import annotations

from pathlib import Path


def cmd_tune(args) -> int:
    from ..tasks import ensemble_tune

    out = Path(args.out or f"{args.name}.ensemble.yaml")
    spec, results = ensemble_tune(args.models, args.data, ferplus=args.ferplus, classes=args.classes,
                                  split=args.split, objective=args.objective, name=args.name, out=out,
                                  backend=args.backend, ship_rule=not args.no_ship_rule)
    print(results["summary"])
    print(f"wrote {out}; use it as --model {out} (evaluate on a test split: emolens evaluate --model {out} "
          f"--data ... --split PrivateTest)")
    return 0


def cmd_pack(args) -> int:
    from ..tasks import ensemble_pack

    path = ensemble_pack(args.spec, args.out)
    print(f"wrote {path} and {path.with_suffix('.json')} (one file holding every member)")
    return 0


def register(sub) -> None:
    e = sub.add_parser("ensemble", help="soft-voting ensembles of trained models")
    esub = e.add_subparsers(dest="ensemble_command", required=True, metavar="ACTION")
    t = esub.add_parser("tune", help="tune member weights on a validation split and write NAME.ensemble.yaml")
    t.add_argument("--models", nargs="+", required=True, help="bundled names or .safetensors paths")
    t.add_argument("--data", nargs="+", required=True, help="the data set the members were trained for (required)")
    t.add_argument("--ferplus", help="FER+ votes file")
    t.add_argument("--classes", help="class subset of the data (default: the members' classes)")
    t.add_argument("--split", help="the split to tune on (default: the validation split, e.g. PublicTest)")
    t.add_argument("--objective", default="nll", choices=["nll", "accuracy"],
                   help="what the weights are tuned for on the split: nll (the lowest negative log-likelihood) or accuracy")
    t.add_argument("--name", default="ensemble", help="the ensemble's name (its spec is NAME.ensemble.yaml)")
    t.add_argument("--out", help="spec path (default NAME.ensemble.yaml)")
    t.add_argument("--backend", default="onnx", choices=["onnx", "torch"], help="classifier runtime")
    t.add_argument("--no-ship-rule", dest="no_ship_rule", action="store_true",
                   help="store the tuned weights even if, cross-fitted on two fixed halves of the split, they do not "
                   "beat equal weights on accuracy or macro-F1 without losing more than 0.3 points of the other "
                   "(default: equal weights then)")
    t.set_defaults(func=cmd_tune)
    p = esub.add_parser("pack", help="write an ensemble spec as one self-contained model file")
    p.add_argument("spec", help="NAME.ensemble.yaml")
    p.add_argument("--out", help="output .safetensors (default beside the spec)")
    p.set_defaults(func=cmd_pack)
