"""``emolens predict``, ``video``, ``webcam`` and ``detectors``: thin layers over :class:`emolens.Recognizer`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import EmolensError

#: Images read and classified together by ``emolens predict`` (all their faces in one batch).
PREDICT_CHUNK = 16


def add_common(p) -> None:
    p.add_argument("--model", default="default", help="bundled model name, default, or a .safetensors path")
    p.add_argument("--detector", default=None, help="face detector (default retinaface; see `emolens detectors`)")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"], help="classifier runtime (default onnx)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--min-score", dest="min_score", type=float, default=None, help="detector confidence threshold")
    p.add_argument("--margin", type=float, default=None, help="border around each face crop, fraction of face size")
    p.add_argument("--max-side", dest="max_side", type=int, default=None,
                   help="detect on a copy at most this many pixels on its longer side (default 480: fast, finds "
                        "faces down to ~20 px in a 640x480 frame; raise it, e.g. 960, or 0 for full size, for small faces in big photos)")
    p.add_argument("--min-confidence", dest="min_confidence", type=float, default=None, metavar="P",
                   help="label a face 'uncertain' when its top calibrated probability is below P (default: off)")
    p.add_argument("--raw", action="store_true", help="the network's own probabilities, without the model's stored "
                   "calibration and operating point (default: calibrated)")
    p.add_argument("--trust-unhashed", dest="trust_unhashed", action="store_true",
                   help="load a model whose spec gives no sha256, skipping its integrity check (default: refuse it)")


def make_recognizer(args):
    from ..api import Recognizer

    if args.threads:
        import cv2

        cv2.setNumThreads(args.threads)
        if "torch" in sys.modules or args.backend == "torch":   # the light install has no torch
            import torch

            torch.set_num_threads(args.threads)
    return Recognizer(model=args.model, detector=args.detector, backend=args.backend, threads=args.threads,
                      margin=args.margin, min_score=args.min_score, max_side=args.max_side,
                      min_confidence=args.min_confidence, raw=args.raw, trust_unhashed=args.trust_unhashed)


# ---------------------------------------------------------------- predict

def cmd_predict(args) -> int:
    from .images import iter_image_files, read_image
    from .results import Results

    quiet = args.quiet or "-" in (args.json, args.csv)        # stdout carries the JSON/CSV
    rec = make_recognizer(args)
    files = list(iter_image_files(args.paths))
    if not files:
        raise EmolensError(f"no image files in {', '.join(args.paths)}")
    results, bad = Results(), []
    for start in range(0, len(files), PREDICT_CHUNK):
        chunk, images = [], []
        for path, root in files[start:start + PREDICT_CHUNK]:
            try:
                images.append(read_image(path))
                chunk.append((path, root))
            except EmolensError as e:
                bad.append((str(path), str(e)))
                print(f"emolens: skipped {e}", file=sys.stderr)
        frames = rec.pipeline.run(images, [str(p) for p, _ in chunk])
        for (path, root), rgb, frame in zip(chunk, images, frames):
            results.append(frame)
            if not quiet:
                print_frame(frame, args.top)
            if args.save_dir:
                save_annotated(rgb, frame, path, root, Path(args.save_dir), args.top)
    write_outputs(results, bad, args)
    n_faces = len(results.faces)
    print(f"{len(results)} image(s), {n_faces} face(s)" + (f", {len(bad)} bad file(s) skipped:" if bad else ""),
          file=sys.stderr)
    for path, _ in bad:
        print(f"  {path}", file=sys.stderr)
    if not results:
        raise EmolensError(f"none of the {len(files)} file(s) could be read as an image")
    return 0


def print_frame(frame, top: int) -> None:
    name = frame.source
    if not frame.faces:
        print(f"{name}  no face found")
        return
    for i, f in enumerate(frame.faces):
        box = ",".join(f"{v:.0f}" for v in f.box)
        tops = "  ".join(f"{k} {p:.2f}" for k, p in f.top(top))
        print(f"{name}  face {i + 1}  box {box}  det {f.score:.2f}  {f.label:<9} {f.confidence:.2f}  [{tops}]")


def save_annotated(rgb, frame, path: Path, root: Path | None, out_dir: Path, top: int) -> Path:
    import cv2

    from .draw import annotate

    rel = path.relative_to(root) if root is not None else Path(path.name)
    target = out_dir / rel
    if target.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
        target = target.with_suffix(".png")
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
    from .video_job import process_video

    csv_path = args.csv
    if csv_path is None and args.out is None:
        csv_path = f"{Path(args.input).stem}_timeline.csv"     # something to show for the run
    plots_dir = None
    if not args.no_plots:
        plots_dir = args.plots or (Path(csv_path).parent if csv_path else Path(args.out).parent)
    rec = make_recognizer(args)
    s = process_video(rec, args.input, out=args.out, csv_path=csv_path, plots_dir=plots_dir, every=args.every,
                      half_life=args.smooth, progress=not args.no_progress)
    if s.ended_early:
        print(f"emolens: warning: {s.source} ended after {s.frames_read} of the {s.expected_frames} frames its "
              "header announces (truncated file?); results cover the frames read", file=sys.stderr)
    print(f"{s.frames_read} frames read, {s.frames_processed} processed, {s.faces} faces, {s.tracks} tracks, "
          f"{s.seconds:.1f} s ({s.frames_processed / max(s.seconds, 1e-9):.1f} processed frames/s)")
    for label, path in (("annotated video", s.video), ("timeline csv", s.csv)):
        if path:
            print(f"wrote {label}: {path}")
    for path in s.plots:
        print(f"wrote timeline plot: {path}")
    return 0


# ---------------------------------------------------------------- webcam

def cmd_webcam(args) -> int:
    from .webcam import open_camera, parse_device, run_webcam

    device = parse_device(args.device)
    open_camera(device).release()                  # fail fast, before loading the model
    rec = make_recognizer(args)
    shown = run_webcam(rec, device, half_life=args.smooth, mirror=not args.no_mirror, max_frames=args.max_frames)
    print(f"{shown} frames shown")
    return 0


# ---------------------------------------------------------------- detectors

def cmd_detectors(args) -> int:
    from .detectors import DEFAULT_DETECTOR, list_detectors

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
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    add_common(p)
    p.add_argument("--json", metavar="FILE", help="write all results as JSON (- for stdout)")
    p.add_argument("--csv", metavar="FILE", help="write one row per face as CSV (- for stdout)")
    p.add_argument("--save-dir", dest="save_dir", metavar="DIR", help="write annotated copies of the images here")
    p.add_argument("--top", type=int, default=3, help="probabilities shown per face (default 3)")
    p.add_argument("--quiet", "-q", action="store_true", help="no table on the terminal")
    p.set_defaults(func=cmd_predict)

    v = sub.add_parser("video", help="recognise and track faces in a video file (streamed)")
    v.add_argument("input", metavar="IN", help="video file")
    add_common(v)
    v.add_argument("--out", help="annotated video to write (.mp4 or .avi)")
    v.add_argument("--csv", help="per-frame, per-face CSV (default IN_timeline.csv when --out is not given)")
    v.add_argument("--every", type=int, default=1, metavar="N", help="process every N-th frame (default 1)")
    v.add_argument("--smooth", type=float, default=0.5, metavar="SECONDS",
                   help="half-life of the per-track probability smoothing (0: off; default 0.5)")
    v.add_argument("--plots", metavar="DIR", help="folder for the timeline PNGs (default: beside the CSV)")
    v.add_argument("--no-plots", dest="no_plots", action="store_true")
    v.add_argument("--no-progress", dest="no_progress", action="store_true")
    v.set_defaults(func=cmd_video)

    w = sub.add_parser("webcam", help="live window with faces and expressions")
    w.add_argument("--device", default="0", help="camera index, or a video path/URL (default 0)")
    add_common(w)
    w.add_argument("--smooth", type=float, default=0.3, metavar="SECONDS", help="smoothing half-life (default 0.3)")
    w.add_argument("--no-mirror", dest="no_mirror", action="store_true", help="do not flip the picture")
    w.add_argument("--max-frames", dest="max_frames", type=int, default=0, help=argparse_suppress())
    w.set_defaults(func=cmd_webcam)

    d = sub.add_parser("detectors", help="list the face detectors and whether they are installed")
    d.set_defaults(func=cmd_detectors)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
