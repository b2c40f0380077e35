"""``emolens batch``: a corpus of images and videos -> a Parquet dataset, on Dask; a thin layer over
:func:`emolens.batch` (docs/cluster.md)."""

from __future__ import annotations

import sys

from . import key_values


def cmd_batch(args) -> int:
    from ..cluster import batch
    from .vision import tta_of

    if not args.sources and not args.list:
        from ..errors import EmolensError

        raise EmolensError("name at least one SOURCE (a file, folder, quoted glob or URL) or --list FILE")
    summary = batch(args.sources, args.out, list_file=args.list,
                    storage_options=key_values(args.storage_option, "--storage-option"),
                    address=args.address, workers=args.workers, chunk=args.chunk, model=args.model,
                    detector=args.detector, backend=args.backend, margin=args.margin, min_score=args.min_score,
                    max_side=args.max_side, tta=tta_of(args), min_confidence=args.min_confidence, raw=args.raw,
                    trust_unhashed=args.trust_unhashed, every=args.every, detect_every=args.detect_every,
                    smooth=args.smooth, patience=args.track_patience, segment=args.segment,
                    overwrite=args.overwrite, progress=not args.no_progress)
    for error in summary.errors[:20]:
        print(f"emolens: error row: {error}", file=sys.stderr)
    if len(summary.errors) > 20:
        print(f"emolens: ... and {len(summary.errors) - 20:,} more error row(s) (the `error` column)", file=sys.stderr)
    for failure in summary.failed:
        print(f"emolens: task failed: {failure}", file=sys.stderr)
    print(summary)
    return 1 if summary.failed else 0


def register(sub) -> None:
    from ..cluster.job import DEFAULT_CHUNK
    from .vision import add_common, add_tracking

    b = sub.add_parser("batch", help="recognise a corpus of images and videos on a Dask cluster (local by default) "
                                     "into a Parquet dataset, resumably")
    b.add_argument("sources", nargs="*", metavar="SOURCE", help="image and video files, folders (walked "
                   "recursively), quoted globs ('clips/**/*.mp4'), or fsspec URLs (s3://bucket/photos/); images and "
                   "videos are told apart by their file name's ending")
    b.add_argument("--list", metavar="FILE", help="a file with one SOURCE a line (# comments and blank lines skipped)")
    b.add_argument("--out", required=True, metavar="DIR", help="the output folder: part-<hash>.parquet files, one row "
                   "per face (pandas.read_parquet(DIR) reads them all); a rerun skips what is already there")
    b.add_argument("--overwrite", action="store_true", help="replace the rows in DIR made with other settings "
                   "(without it such a DIR is refused)")
    b.add_argument("--storage-option", dest="storage_option", action="append", metavar="K=V",
                   help="an option of the fsspec filesystem of the URLs (e.g. anon=true, "
                        "client_kwargs.endpoint_url=...); repeat for more")
    b.add_argument("--address", metavar="HOST:PORT", help="the Dask scheduler to run on (default: "
                   "DASK_SCHEDULER_ADDRESS when set, else a local cluster of --workers processes)")
    b.add_argument("--workers", type=int, default=None, metavar="N", help="worker processes of the local cluster, "
                   "one thread each (default: one per core)")
    b.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, metavar="N",
                   help="images per task, their faces classified in one batch")
    add_common(b, None)
    hide_option(b, "--threads")                     # every worker runs on one thread
    b.add_argument("--every", type=int, default=1, metavar="N", help="videos: process every N-th frame (default 1)")
    add_tracking(b)
    b.add_argument("--smooth", type=float, default=0.5, metavar="SECONDS",
                   help="videos: half-life of the per-track probability smoothing (0: off; default 0.5)")
    b.add_argument("--segment", type=float, default=0, metavar="SECONDS",
                   help="split videos at keyframes into tasks of about SECONDS each (tracks and smoothing restart "
                        "in each: the `segment` column says which); 0: one task per video (default 0)")
    b.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_batch)


def hide_option(parser, flag: str) -> None:
    import argparse

    parser._option_string_actions[flag].help = argparse.SUPPRESS
