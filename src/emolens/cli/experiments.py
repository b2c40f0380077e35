"""``emolens experiment CONFIG.yaml``: train a list of runs and write one markdown table."""

from __future__ import annotations

import json
import shlex
import sys


def batches(text: str) -> int | float:
    """``20`` -> 20 batches; ``0.25`` -> a quarter of them (Lightning's limit_train_batches)."""
    value = float(text)
    return int(value) if value >= 1 and value == int(value) else value


def cmd_experiment(args) -> int:
    from ..tasks import experiment
    from ..experiments.table import describe_runs

    command = "emolens " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.record_command else ""
    exp, results = experiment(args.config, only=args.only, rerun=args.rerun, threads=args.threads, out=args.out,
                              table=args.table, epochs=args.epochs, limit_train_batches=args.limit_train_batches,
                              max_train_rows=args.max_train_rows, max_val_rows=args.max_val_rows,
                              schedule_note=args.schedule_note, dry_run=args.dry_run, progress=args.progress,
                              command=command)
    if args.dry_run:
        print(json.dumps({"out": str(exp.out), "table": str(exp.table), "schedule": exp.schedule.describe(),
                          "runs": describe_runs(exp)}, indent=2, default=str))
        return 0
    print(f"\nwrote {exp.table} and {exp.out / 'results.json'}")
    print(exp.table.read_text())
    return 0 if all(r.status == "ok" for r in results) else 1


def register(sub) -> None:
    x = sub.add_parser("experiment", help="run a list of trainings (model x balancing x data, ensembles) and "
                                          "write one markdown table")
    x.add_argument("config", help="experiment YAML (see configs/experiments/)")
    x.add_argument("--threads", type=int, help="torch CPU threads for every run")
    x.add_argument("--only", nargs="+", metavar="LABEL", help="run only these runs (ensembles bring their members)")
    x.add_argument("--rerun", action="store_true", help="train again runs that already finished")
    x.add_argument("--out", help="folder of the run folders (default: the file's out:)")
    x.add_argument("--table", help="markdown table path (default: the file's table:)")
    s = x.add_argument_group("shortened schedule (overrides the file's schedule:)")
    s.add_argument("--epochs", type=int, help="epochs of every run")
    s.add_argument("--limit-train-batches", dest="limit_train_batches", type=batches,
                   help="training batches per epoch (an integer) or a fraction of them")
    s.add_argument("--max-train-rows", dest="max_train_rows", type=int, help="stratified training subset size")
    s.add_argument("--max-val-rows", dest="max_val_rows", type=int, help="stratified validation subset size")
    s.add_argument("--schedule-note", dest="schedule_note", help="a sentence on the schedule for the table")
    x.add_argument("--dry-run", action="store_true", help="print the runs and exit")
    x.add_argument("--progress", action="store_true", help="show progress bars")
    x.add_argument("--no-record-command", dest="record_command", action="store_false",
                   help="do not write the command line under the table")
    x.set_defaults(func=cmd_experiment)
