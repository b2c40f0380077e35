"""``emolens predict``, ``video``, ``webcam`` and ``detectors``: thin layers over :class:`emolens.Recognizer`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import EmolensError
from ..text import plural

#: Images read and classified together by ``emolens predict`` (all their faces in one batch).
PREDICT_CHUNK = 16

#: An image with no face found and no side longer than this is likely a face crop (FER-2013's are
#: 48x48): detectors need some of the head's surroundings, so the message points to --detector none.
CROP_SIDE = 256


def add_common(p, kind: str | None) -> None:
    """The recogniser's options; ``kind`` (photo or stream; None: both, by input) names the default
    detection size (:mod:`emolens.vision.detection_size`, the table the Python API and the server read too)."""
    from ..vision.align import DEFAULT_MARGIN
    from ..vision.detection_size import DETECTION_SIZE
    from ..vision.detectors import DEFAULT_DETECTOR, detector_info

    size = DETECTION_SIZE.get(kind)
    p.add_argument("--model", default="default", help="bundled model name, default, a .safetensors path or an "
                   "exported .onnx file (`emolens export`)")
    p.add_argument("--detector", default=None, help="face detector (default retinaface; see `emolens detectors`); "
                   "none: each image is one pre-cropped face")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"], help="classifier runtime (default onnx)")
    add_precision(p, "auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the detector and classifier (default: all)")
    p.add_argument("--min-score", dest="min_score", type=float, default=None,
                   help=f"detector confidence threshold (default: the detector's own, {DEFAULT_DETECTOR} "
                        f"{detector_info(DEFAULT_DETECTOR).factory.default_min_score})")
    p.add_argument("--margin", type=float, default=None, help="border around each face crop, fraction of face size "
                   f"(default {DEFAULT_MARGIN}: the detector's box, which spans brows to chin)")
    default = f"{size}, the {kind} size; " if kind else "by kind of input: "
    p.add_argument("--max-side", dest="max_side", type=int, default=None, metavar="PX",
                   help=f"detect on a copy at most PX pixels on its longer side, smaller images at their own size "
                        f"(default {default}photos {DETECTION_SIZE['photo']}, streams (videos) "
                        f"{DETECTION_SIZE['stream']}, as in Python and the server; 480 finds faces down to ~20 px in "
                        "a 640x480 frame, 960 many more small faces in big photos for about 1.5x the detection time; "
                        "0: full size)")
    if kind == "photo":
        from ..vision.detection_size import FIRST_PASS

        p.add_argument("--first-pass", dest="first_pass", type=int, default=None, metavar="PX",
                       help=f"detect each image at PX pixels first and again at --max-side only when that pass is "
                            f"unsure (no face, a doubtful or small face, a faint candidate) (default {FIRST_PASS}; "
                            "0: one pass at --max-side)")
    p.add_argument("--min-confidence", dest="min_confidence", type=float, default=None, metavar="P",
                   help="label a face 'uncertain' when its top calibrated probability is below P (default: off)")
    p.add_argument("--tta", nargs="?", const="flip", default=None, choices=["flip", "ten_crop", "none"], metavar="MODE",
                   help="test-time augmentation: flip (the default MODE) also classifies the mirrored face and averages, "
                        "about one point more accuracy for twice the classifier time; ten_crop: ten views, ten times "
                        "the time (default: off)")
    p.add_argument("--raw", action="store_true", help="the network's own probabilities, without the model's stored "
                   "calibration and operating point (default: calibrated)")
    p.add_argument("--trust-unhashed", dest="trust_unhashed", action="store_true",
                   help="load a model whose spec gives no sha256, skipping its integrity check (default: refuse it)")


def add_precision(p, default: str) -> None:
    """``--precision {auto,float,int8}``: the classifier network (:mod:`emolens.runtime.quantize`)."""
    from ..runtime.quantize import PRECISIONS

    p.add_argument("--precision", default=default, choices=PRECISIONS,
                   help=f"classifier network: int8 (its INT8 copy, ONNX Runtime; faster), float (as trained) or auto "
                        f"(INT8 where the model's card shows parity with float, else float) (default {default})")


def make_recognizer(args):
    from ..api import Recognizer

    if args.threads:
        import cv2

        cv2.setNumThreads(args.threads)
        if "torch" in sys.modules or args.backend == "torch":   # the light install has no torch
            import torch

            torch.set_num_threads(args.threads)
    return Recognizer(model=args.model, detector=args.detector, backend=args.backend, precision=args.precision,
                      threads=args.threads, margin=args.margin, min_score=args.min_score, max_side=args.max_side,
                      first_pass=getattr(args, "first_pass", None), tta=tta_of(args),
                      min_confidence=args.min_confidence, raw=args.raw, trust_unhashed=args.trust_unhashed)


def tta_of(args):
    """``--tta`` as the Recognizer takes it: off (False) unless a mode is given."""
    return args.tta if getattr(args, "tta", None) not in (None, "none") else False


# ---------------------------------------------------------------- predict

def cmd_predict(args) -> int:
    from functools import partial

    from ..vision.batch import run_jobs
    from ..vision.images import iter_image_files
    from ..vision.results import Results

    quiet = args.quiet or "-" in (args.json, args.csv)        # stdout carries the JSON/CSV
    files = list(iter_image_files(args.paths))
    if not files:
        raise EmolensError(f"no image files in {', '.join(args.paths)}")
    save_dir = Path(args.save_dir) if args.save_dir else None
    check_predict_outputs(args, files, save_dir)
    workers = check_workers(args.workers)
    rec = make_recognizer(args) if workers == 1 else None      # else each worker makes its own
    size = min(PREDICT_CHUNK, -(-len(files) // workers))        # every worker gets a share
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    results, bad = Results(), []
    for frames, chunk_bad in run_jobs(partial(predict_chunk, save_dir=save_dir, top=args.top), chunks,
                                      make_recognizer, worker_options(args, workers), workers,
                                      sizes=[len(c) for c in chunks], unit="image", desc="predict",
                                      progress=not args.no_progress, recognizer=rec):
        for path, error in chunk_bad:
            bad.append((path, error))
            print(f"emolens: skipped {error}", file=sys.stderr)
        for frame in frames:
            results.append(frame)
            if not quiet:
                print_frame(frame, args.top)
    write_outputs(results, bad, args)
    n_faces = len(results.faces)
    print(f"{len(results)} image(s), {n_faces} face(s)" + (f", {len(bad)} bad file(s) skipped:" if bad else ""),
          file=sys.stderr)
    for path, _ in bad:
        print(f"  {path}", file=sys.stderr)
    if not results:
        raise EmolensError(f"none of the {len(files)} file(s) could be read as an image")
    return 0


def check_predict_outputs(args, files, save_dir: Path | None) -> None:
    """Refuse, before any work, outputs that would overwrite an input image, and a --save-dir inside
    an input folder (a second run would read the annotated copies and draw boxes on boxes)."""
    from ..files import refuse_inside, refuse_overwriting

    inputs = [path for path, _ in files]
    for option, out in (("--json", args.json), ("--csv", args.csv)):
        if out and out != "-":
            refuse_overwriting([out], inputs, option)
    if save_dir is not None:
        refuse_inside(save_dir, args.paths, "--save-dir", "a second run would read the annotated copies as photos; "
                      "choose a folder outside it")
        refuse_overwriting((annotated_path(path, root, save_dir) for path, root in files), inputs, "--save-dir")


def predict_chunk(rec, chunk, save_dir: Path | None = None, top: int = 3):
    """Read a few image files, recognise all their faces in one batch, save the annotated copies;
    returns (FrameResults, [(file, error)] for files that are not images)."""
    from ..vision.images import read_image

    kept, images, bad = [], [], []
    for path, root in chunk:
        try:
            images.append(read_image(path))
            kept.append((path, root))
        except EmolensError as e:
            bad.append((str(path), str(e)))
    frames = rec.predict_batch(images)              # all faces of the chunk in one batch
    for frame, (path, _) in zip(frames, kept):
        frame.source, frame.image = str(path), None   # a file again: plot() reads it, results stay small
    if save_dir is not None:
        for (path, root), rgb, frame in zip(kept, images, frames):
            save_annotated(rgb, frame, path, root, save_dir, top)
    return frames, bad


def check_tracking(args) -> None:
    if args.detect_every < 1:
        raise EmolensError(f"--detect-every must be at least 1, not {args.detect_every}")
    if args.track_patience < 0:
        raise EmolensError(f"--track-patience must be 0 seconds or more, not {args.track_patience}")


def check_workers(workers: int) -> int:
    if workers < 1:
        raise EmolensError(f"--workers must be at least 1, not {workers}")
    return workers


def worker_options(args, workers: int):
    """The recogniser options for worker processes: one thread each (the processes share the cores)."""
    import argparse

    options = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "func"})
    if workers > 1:
        options.threads = 1
    return options


def print_frame(frame, top: int) -> None:
    name = frame.source
    if not frame.faces:
        crop = f" ({frame.width}x{frame.height}: for a face crop use --detector none)" \
            if 0 < max(frame.width, frame.height) <= CROP_SIDE else ""
        print(f"{name}  no face found{crop}")
        return
    for i, f in enumerate(frame.faces):
        box = ",".join(f"{v:.0f}" for v in f.box)
        tops = "  ".join(f"{k} {p:.2f}" for k, p in f.top(top))
        print(f"{name}  face {i + 1}  box {box}  det {f.score:.2f}  {f.label:<9} {f.confidence:.2f}  [{tops}]")


def annotated_path(path: Path, root: Path | None, out_dir: Path) -> Path:
    """Where ``--save-dir`` puts the annotated copy of ``path`` (the tree under ``root`` mirrored)."""
    target = out_dir / (path.relative_to(root) if root is not None else Path(path.name))
    if target.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
        target = target.with_suffix(".png")
    return target


def save_annotated(rgb, frame, path: Path, root: Path | None, out_dir: Path, top: int) -> Path:
    import cv2

    from ..vision.draw import annotate

    target = annotated_path(path, root, out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    bgr = annotate(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), frame, top_k=top)
    if not cv2.imwrite(str(target), bgr):
        raise EmolensError(f"{target}: cannot write the annotated image")
    return target


def write_outputs(results, bad, args) -> None:
    if args.json:
        doc = {"images": results.to_dicts(), "errors": [{"file": f, "error": e} for f, e in bad]}
        text = json.dumps(doc, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text)
            print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        df = results.to_pandas()
        if args.csv == "-":
            df.to_csv(sys.stdout, index=False)
        else:
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(args.csv, index=False)
            print(f"wrote {args.csv}", file=sys.stderr)


# ---------------------------------------------------------------- video

def cmd_video(args) -> int:
    from functools import partial

    from ..vision.batch import run_jobs

    check_tracking(args)
    inputs = [Path(p) for p in args.inputs]
    several = len(inputs) > 1
    jobs = [video_targets(src, args, several) for src in inputs]
    check_video_outputs(jobs, inputs)
    workers = check_workers(args.workers)
    rec = make_recognizer(args) if workers == 1 else None
    options = worker_options(args, workers)
    job = partial(video_job, every=args.every, half_life=args.smooth, detect_every=args.detect_every,
                  patience=args.track_patience, progress=not args.no_progress and not several and workers == 1,
                  encoder_threads=options.threads or 0)
    summaries = run_jobs(job, jobs, make_recognizer, options, workers, unit="video",
                         desc="videos", progress=several and not args.no_progress, recognizer=rec)
    for s in summaries:
        report_video(s)
    return 0


def video_targets(source: Path, args, several: bool) -> tuple[Path, Path | None, Path | None, Path | None]:
    """(input, annotated video, CSV, plots folder) for one input; with several inputs ``--out`` and
    ``--csv`` name folders, and each input gets ``STEM.mp4`` and ``STEM_timeline.csv`` there."""
    out, csv_path = args.out, args.csv
    if several:
        out = Path(out) / f"{source.stem}.mp4" if out else None
        csv_path = Path(csv_path) / f"{source.stem}_timeline.csv" if csv_path else None
    if csv_path is None and out is None:             # something to show for the run, beside the input
        csv_path = source.with_name(f"{source.stem}_timeline.csv") if source.is_file() else \
            Path(f"{source.stem}_timeline.csv")      # (a stream URL: the working folder)
    plots_dir = None
    if not args.no_plots:
        plots_dir = args.plots or (Path(csv_path).parent if csv_path else Path(out).parent)
    return source, out, csv_path, plots_dir


def check_video_outputs(jobs, inputs) -> None:
    """No annotated video or CSV may be one of the input videos (before any work)."""
    from ..files import refuse_overwriting

    for option, i in (("--out", 1), ("--csv", 2)):
        refuse_overwriting([job[i] for job in jobs if job[i]], inputs, option)


def video_job(rec, targets, every: int = 1, half_life: float = 0.5, detect_every: int | None = None,
              patience: float | None = None, progress: bool = True, encoder_threads: int = 0):
    from ..vision.video_job import process_video

    source, out, csv_path, plots_dir = targets
    return process_video(rec, source, out=out, csv_path=csv_path, plots_dir=plots_dir, every=every,
                         half_life=half_life, progress=progress, detect_every=detect_every, patience=patience,
                         encoder_threads=encoder_threads)


def report_video(s) -> None:
    if s.ended_early:
        print(f"emolens: warning: {s.source} ended after {s.frames_read} of the {s.expected_frames} frames its "
              "header announces (truncated file?); results cover the frames read", file=sys.stderr)
    print(f"{s.source}: {plural(s.frames_read, 'frame')} read, {s.frames_processed:,} processed, "
          f"{plural(s.faces, 'face')}, {plural(s.tracks, 'track')}, {s.seconds:.1f} s "
          f"({s.frames_processed / max(s.seconds, 1e-9):.1f} processed frames/s; "
          f"faces detected on {plural(s.detections, 'frame')}, followed on the others)")
    for label, path in (("annotated video", s.video), ("timeline csv", s.csv), ("overview plot", s.overview)):
        if path:
            print(f"wrote {label}: {path}" + (" (with the input's audio track)" if path == s.video and s.audio else ""))
    for path in s.plots:
        print(f"wrote timeline plot: {path}")


# ---------------------------------------------------------------- webcam

def cmd_webcam(args) -> int:
    from ..vision.webcam import open_camera, parse_device, run_webcam

    check_tracking(args)
    device = parse_device(args.device)
    open_camera(device).release()                  # fail fast, before loading the model
    rec = make_recognizer(args)
    shown = run_webcam(rec, device, half_life=args.smooth, mirror=not args.no_mirror, max_frames=args.max_frames,
                       detect_every=args.detect_every, patience=args.track_patience)
    print(f"{plural(shown, 'frame')} shown")
    return 0


# ---------------------------------------------------------------- detectors

def cmd_detectors(args) -> int:
    from ..vision.detectors import DEFAULT_DETECTOR, list_detectors

    print(f"{'detector':<12} {'landmarks':<10} {'installed':<10} description")
    missing = []
    for info in list_detectors():
        name = info.name + (" *" if info.name == DEFAULT_DETECTOR else "")
        print(f"{name:<12} {'5' if info.landmarks else '-':<10} {'yes' if info.available() else 'no':<10} "
              f"{info.description}")
        if not info.available():
            missing.append(info)
    print("* default")
    for info in missing:
        print(f"to install {info.name}: {info.pip_command}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("predict", help="recognise expressions in images and folders (recursively)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders, or quoted "
                   "patterns such as 'photos/*.jpg'")
    add_common(p, "photo")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON (- for stdout)")
    p.add_argument("--csv", metavar="FILE", help="write one row per face as CSV, and one with empty face columns "
                   "per image without a face (- for stdout)")
    p.add_argument("--save-dir", dest="save_dir", metavar="DIR", help="write annotated copies of the images here: a folder outside the "
                   "input folders, where no copy lands on an input (such a folder is refused)")
    p.add_argument("--top", type=int, default=3, help="probabilities shown per face (default 3)")
    p.add_argument("--quiet", "-q", action="store_true", help="no table on the terminal")
    add_workers(p, "images")
    p.set_defaults(func=cmd_predict)

    v = sub.add_parser("video", help="recognise and track faces in video files (streamed)")
    v.add_argument("inputs", nargs="+", metavar="IN", help="video file(s)")
    add_common(v, "stream")
    v.add_argument("--out", help="annotated video to write: .mp4 (H.264, plays in browsers), .mov or .avi, with "
                   "the input's audio track; with several inputs a folder (STEM.mp4 each); never an input (refused) "
                   "(default: none)")
    v.add_argument("--csv", help="per-frame, per-face CSV (default without --out: IN_timeline.csv beside the input); "
                   "with several inputs a folder (STEM_timeline.csv each)")
    v.add_argument("--every", type=int, default=1, metavar="N", help="process every N-th frame (default 1)")
    add_tracking(v)
    v.add_argument("--smooth", type=float, default=0.5, metavar="SECONDS",
                   help="half-life of the per-track probability smoothing (0: off; default 0.5)")
    v.add_argument("--plots", metavar="DIR", help="folder for the timeline PNGs (default: beside the CSV, else "
                   "beside the annotated video)")
    v.add_argument("--no-plots", dest="no_plots", action="store_true", help="write no timeline PNGs")
    v.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bar")
    add_workers(v, "videos")
    v.set_defaults(func=cmd_video)

    w = sub.add_parser("webcam", help="live window with faces and expressions")
    w.add_argument("--device", default="0", help="camera index, or a video path/URL (default 0)")
    add_common(w, "stream")
    w.add_argument("--smooth", type=float, default=0.3, metavar="SECONDS",
                   help="half-life of the per-track probability smoothing (0: off; default 0.3, shorter than "
                        "video's 0.5 so that a live label follows a change of expression sooner)")
    w.add_argument("--no-mirror", dest="no_mirror", action="store_true", help="do not flip the picture")
    add_tracking(w)
    w.add_argument("--max-frames", dest="max_frames", type=int, default=0, help=argparse_suppress())
    w.set_defaults(func=cmd_webcam)

    d = sub.add_parser("detectors", help="list the face detectors and whether they are installed")
    d.set_defaults(func=cmd_detectors)


def add_tracking(p) -> None:
    from ..vision.streaming import DEFAULT_DETECT_EVERY
    from ..vision.tracking import DEFAULT_PATIENCE

    p.add_argument("--detect-every", dest="detect_every", type=int, default=DEFAULT_DETECT_EVERY, metavar="N",
                   help="run the face detector every N-th processed frame and follow the faces in between "
                        "(re-aligned and classified on every frame; the detector runs at once when a face is "
                        f"lost, reaches the edge or its confidence drops); 1: every frame (default {DEFAULT_DETECT_EVERY})")
    p.add_argument("--track-patience", dest="track_patience", type=float, default=DEFAULT_PATIENCE,
                   metavar="SECONDS", help="how long a face may vanish and come back with its track id "
                                           f"(default {DEFAULT_PATIENCE:g})")


def add_workers(p, what: str) -> None:
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help=f"worker processes for the {what}, each with its own recogniser on one thread "
                        "(results are the same as with 1; default 1)")
    if what == "images":
        p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bar")


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
