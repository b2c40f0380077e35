"""Video speed and accuracy: detection every N frames, against the ``fer`` package, in one run.

    python benchmarks/video.py [--fer-python /work/venvs/fer/bin/python] [--every 1 2 3 5 8 10]
                               [--frames 150] [--write docs/benchmarks-video.md]

1. Speed, one core: the process (and the fer subprocess) is pinned to one CPU and every runtime
   runs one thread. A 640x480 clip with one moving face (the public-domain astronaut portrait,
   ``emolens.assets.face_frame``) goes through ``Recognizer.tracker(detect_every=N)`` frame by
   frame (decoded frames in memory: decoding is not timed, for us or for fer); mean ms per frame
   (CPU time of the process, and wall time) for each N. The same frames go through
   ``fer.FER(mtcnn=False)`` (OpenCV Haar cascade + mini-Xception on TensorFlow; ``pip install fer``
   in a separate environment, given by ``--fer-python``), and each row prints its ratio to fer.
   Targets: <= 10 ms per frame at N=1, <= 4 ms mean at the default N.
2. Accuracy cost of N: a clip made of labelled FER-2013 PublicTest faces (validation split),
   scaled up and moving, the face changing expression every ``--hold`` frames (as a person does),
   per-frame labels (no smoothing) at each N compared with N=1 (agreement) and with the true label.
3. Worker processes: ``emolens video A B C D`` with ``--workers 1`` and ``--workers 2`` (wall time,
   both cores): the speed-up.
4. Still photos: faces found and detection time for detection sizes (``max_side``) on a synthetic
   group photo (24 astronaut heads, faces ~45-180 px, on a 4000x3000 canvas) and on a copy at
   half size, and on ``face_frame(5)`` (five ~120 px heads at 640x480).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FER_DATA = next((p for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.exists()), REPO.parent / "shared") \
    / "data" / "fer2013" / "fer2013.csv.gz"

#: The start of every script run by --fer-python: fer and TensorFlow on one thread (its TensorFlow
#: Lite classifier too: fer builds that interpreter with the default thread count).
FER_IMPORTS = r"""
import json, os, statistics, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, cv2
import tensorflow as tf
cv2.setNumThreads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
try:
    from fer import FER
except ImportError:
    from fer.fer import FER
import importlib.resources as res
try:
    it = tf.lite.Interpreter(model_path=str(res.files("fer") / "data" / "emotion_model_quantized.tflite"), num_threads=1)
    it.allocate_tensors()
    FER._tflite_interpreter_cache = it
except Exception:
    pass
"""

#: Run by --fer-python: times fer.FER(mtcnn=False).detect_emotions on the frames of an .npy file.
FER_SCRIPT = FER_IMPORTS + r"""
frames = np.load(sys.argv[1])
detector = FER(mtcnn=False)
for f in frames[:5]:
    detector.detect_emotions(f)
wall, cpu, faces = time.perf_counter(), time.process_time(), 0
for f in frames:
    faces += len(detector.detect_emotions(f))
n = len(frames)
print(json.dumps({"wall": (time.perf_counter() - wall) * 1e3 / n, "cpu": (time.process_time() - cpu) * 1e3 / n,
                  "faces": faces / n}))
"""


def one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["EMOLENS_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


def moving_face_clip(n: int) -> np.ndarray:
    """(n, 480, 640, 3) BGR frames: one astronaut head drifting in a slow ellipse."""
    from emolens.assets import face_frame

    base = face_frame(1)
    out = np.empty((n, 480, 640, 3), np.uint8)
    for i in range(n):
        dx, dy = int(40 * np.sin(i / 15)), int(15 * np.sin(i / 9))
        out[i] = np.roll(base, (dy, dx), axis=(0, 1))[..., ::-1]
    return out


def labelled_clip(n_faces: int, hold: int, seed: int = 0):
    """BGR 640x480 frames of FER-2013 PublicTest faces (3x, on a grey canvas, moving), each held for
    ``hold`` frames, and the true class name per frame."""
    import cv2

    from emolens.data.fer2013 import read_fer2013

    ds = read_fer2013(FER_DATA)
    pick = np.flatnonzero(ds.splits == "PublicTest")
    rng = np.random.default_rng(seed)
    pick = rng.choice(pick, n_faces, replace=False)
    frames, truth = [], []
    for k, row in enumerate(pick):
        face = cv2.resize(ds.images[row], (144, 144), interpolation=cv2.INTER_CUBIC)
        for j in range(hold):
            i = k * hold + j
            canvas = np.full((480, 640), 110, np.uint8)
            x, y = 248 + int(30 * np.sin(i / 12)), 168 + int(12 * np.sin(i / 7))
            canvas[y:y + 144, x:x + 144] = face
            frames.append(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
            truth.append(ds.class_names[ds.labels[row]])
    return np.stack(frames), truth


def run_stream(rec, frames: np.ndarray, every: int, half_life: float = 0.5, fps: float = 30.0):
    """(results, mean wall ms, mean CPU ms per frame) of the whole clip through a fresh tracker."""
    tracker = rec.tracker(detect_every=every, half_life=half_life)
    for f in frames[:5]:                                  # warm the runtimes up
        tracker.update(f, bgr=True, timestamp=0.0)
    tracker.reset()
    out = []
    wall, cpu = time.perf_counter(), time.process_time()
    for i, f in enumerate(frames):
        out.append(tracker.update(f, bgr=True, index=i, timestamp=i / fps))
    n = len(frames)
    return out, (time.perf_counter() - wall) * 1e3 / n, (time.process_time() - cpu) * 1e3 / n, tracker.detections


def fer_times(python: str | None, frames: np.ndarray, core: int) -> dict | str:
    if not python:
        return "not measured: give --fer-python PATH (an interpreter with `pip install fer tensorflow-cpu`)"
    if not Path(python).exists():
        return f"not measured: {python} does not exist"
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "frames.npy", frames)
        env = dict(os.environ, OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
                   CUDA_VISIBLE_DEVICES="")
        env.pop("PYTHONPATH", None)
        proc = subprocess.run(["taskset", "-c", str(core), python, "-c", FER_SCRIPT, str(Path(tmp) / "frames.npy")],
                              capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return "not measured: fer failed: " + proc.stderr.strip().splitlines()[-1][:300]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speed(recognizers: dict, frames, everies, fer, default_every):
    """Rows per (detection size, N); ``recognizers``: max_side -> Recognizer (the first is the default)."""
    rows = []
    for side, rec in recognizers.items():
        for every in everies if side == next(iter(recognizers)) else [1, default_every]:
            best = None
            for _ in range(2):                            # the better of two passes: less noise from neighbours
                _, wall, cpu, detections = run_stream(rec, frames, every)
                if best is None or cpu < best[1]:
                    best = (wall, cpu, detections)
            rows.append({"side": side, "every": every, "wall": best[0], "cpu": best[1], "detections": best[2]})
    lines = ["| detection size | detect every N | detector ran on | ms/frame CPU (wall) | frames/s (CPU) | "
             "fer ms/frame CPU (wall) | speed-up vs fer (CPU) |", "|---|---|---|---|---|---|---|"]
    fer_cell = f"{fer['cpu']:.1f} ({fer['wall']:.1f})" if isinstance(fer, dict) else "-"
    for r in rows:
        ratio = f"{fer['cpu'] / r['cpu']:.1f}x" if isinstance(fer, dict) else "-"
        mark = " (default)" if r["every"] == default_every else ""
        lines.append(f"| {r['side']} | {r['every']}{mark} | {r['detections']} of {len(frames)} frames | "
                     f"{r['cpu']:.2f} ({r['wall']:.2f}) | {1000 / r['cpu']:.0f} | {fer_cell} | {ratio} |")
    from emolens.vision.detection_size import STREAM as STREAM_MAX_SIDE

    side = STREAM_MAX_SIDE if any(r["side"] == STREAM_MAX_SIDE for r in rows) else rows[0]["side"]
    at = {r["every"]: r["cpu"] for r in rows if r["side"] == side}
    lines.append(f"\nTargets (one core, detection size {side}): N=1 {at[1]:.1f} ms per frame (target <= 10: "
                 f"{'met' if at[1] <= 10 else 'not met'}); default N={default_every} {at[default_every]:.1f} ms mean "
                 f"(target <= 4: {'met' if at[default_every] <= 4 else 'not met'}).")
    return rows, "\n".join(lines)


def accuracy(rec, everies, n_faces: int, hold: int):
    frames, truth = labelled_clip(n_faces, hold)
    results = {}
    for every in everies:
        out, *_ = run_stream(rec, frames, every, half_life=0.0)
        results[every] = [f.faces[0].label if f.faces else None for f in out]
    base = results[1]
    lines = ["| detect every N | frames with a face | label agrees with N=1 | accuracy vs FER-2013 label (PublicTest) |",
             "|---|---|---|---|"]
    rows = []
    for every in everies:
        labels = results[every]
        found = sum(lab is not None for lab in labels)
        both = [(a, b) for a, b in zip(labels, base) if b is not None]
        agree = sum(a == b for a, b in both) / max(len(both), 1)
        acc = sum(a == t for a, t in zip(labels, truth)) / len(truth)
        rows.append({"every": every, "found": found, "agree": agree, "accuracy": acc})
        lines.append(f"| {every} | {found} of {len(labels)} | {agree:.1%} | {acc:.1%} |")
    return rows, "\n".join(lines)


def workers_speedup(model: str, clips: int = 4, frames: int = 150) -> tuple[dict, str]:
    """Wall seconds of the `emolens video` jobs on ``clips`` clips with 1 and 2 worker processes,
    the workers started beforehand (the start, importing the runtimes and loading the model, is
    timed apart: it is paid once per run, not per video)."""
    import argparse
    from functools import partial

    from emolens.vision.batch import run_jobs, worker_pool
    from emolens.cli.vision import make_recognizer, video_job, worker_options
    from emolens.vision.video import VideoWriter

    options = argparse.Namespace(model=model, detector=None, backend="onnx", threads=1, margin=None, min_score=None,
                                 max_side=None, min_confidence=None, raw=False)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        clip = moving_face_clip(frames)
        for k in range(clips):
            path = Path(tmp) / f"clip{k}.mp4"
            with VideoWriter(path, 30, 640, 480) as writer:
                for f in np.roll(clip, k * 7, axis=0):
                    writer.write(f)
            jobs.append((path, None, Path(tmp) / f"clip{k}_w.csv", None))
        job = partial(video_job, progress=False, encoder_threads=1)
        seconds, start = {}, {}
        for workers in (1, 2):
            t = time.perf_counter()
            if workers == 1:
                rec, pool = make_recognizer(options), None
            else:
                rec, pool = None, worker_pool(make_recognizer, worker_options(options, workers), workers)
                list(pool.map(time.sleep, [0.5] * workers))           # every worker up, its model loaded
            start[workers] = time.perf_counter() - t
            t = time.perf_counter()
            list(run_jobs(job, jobs, make_recognizer, options, workers, progress=False, recognizer=rec, pool=pool))
            seconds[workers] = time.perf_counter() - t
            if pool is not None:
                pool.shutdown()
    text = (f"`emolens video` jobs on {clips} clips of {frames} frames (640x480, one face, CSV written), one thread per "
            f"worker: 1 worker {seconds[1]:.1f} s, 2 workers {seconds[2]:.1f} s, speed-up "
            f"**{seconds[1] / seconds[2]:.2f}x** (wall time, {os.cpu_count()} cores shared with other work: see the load "
            f"average above). Starting the workers (importing the runtimes, loading the model) took "
            f"{start[1]:.1f} s for 1 and {start[2]:.1f} s for 2, once per run.")
    return seconds, text


def group_photo(width: int = 4000, height: int = 3000, seed: int = 0):
    """A synthetic group photo (a 12-megapixel phone picture of 24 people): astronaut head-and-shoulder
    crops from 100 to 400 px (faces about 45 to 180 px wide) on a grey canvas; (RGB, face boxes)."""
    import cv2

    from emolens.assets import astronaut

    head = astronaut()[20:300, 110:390]
    rng = np.random.default_rng(seed)
    canvas = np.full((height, width, 3), 96, np.uint8)
    boxes = []
    cols, rows = 6, 4
    for r in range(rows):
        for c in range(cols):
            side = int(rng.uniform(100, 400))
            cx, cy = (c + 0.5) * width / cols, (r + 0.5) * height / rows
            x, y = int(cx - side / 2), int(cy - side / 2)
            canvas[y:y + side, x:x + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
            # the face is the middle of the head crop (the crop also shows hair and shoulders)
            boxes.append((x + 0.3 * side, y + 0.2 * side, x + 0.75 * side, y + 0.75 * side))
    return canvas, np.array(boxes)


def found_faces(detections, truth: np.ndarray) -> int:
    from emolens.vision.tracking import iou_matrix

    if not detections:
        return 0
    found = np.array([d.box for d in detections])
    return int((iou_matrix(truth, found).max(axis=1) >= 0.3).sum())


def max_side_study(sides, repeat: int = 3):
    import cv2

    from emolens.assets import face_frame
    from emolens.vision.detectors import create_detector

    big, truth = group_photo()
    half = cv2.resize(big, (big.shape[1] // 2, big.shape[0] // 2), interpolation=cv2.INTER_AREA)
    five = face_frame(5)
    images = [("group photo 4000x3000, 24 faces ~45-180 px", big, truth, None),
              ("the same at 2000x1500, faces ~22-90 px", half, truth / 2, None),
              ("face_frame(5): 640x480, five ~120 px heads", five, None, 5)]
    lines = ["| image | max_side | faces found | detection ms CPU |", "|---|---|---|---|"]
    rows = []
    for name, image, boxes, known in images:
        for side in sides:
            det = create_detector(None, max_side=side, threads=1)
            det.detect(image)
            cpu = []
            for _ in range(repeat):
                t = time.process_time()
                found = det.detect(image)
                cpu.append((time.process_time() - t) * 1e3)
            n = found_faces(found, boxes) if boxes is not None else len(found)
            total = len(boxes) if boxes is not None else known
            rows.append({"image": name, "side": side, "found": n, "total": total, "ms": float(np.median(cpu))})
            lines.append(f"| {name} | {side or 'full'} | {n} of {total} | {np.median(cpu):.0f} |")
    return rows, "\n".join(lines)


def main() -> None:
    from pipeline import environment  # benchmarks/pipeline.py: the same header line

    from emolens.vision.streaming import DEFAULT_DETECT_EVERY

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--fer-python", dest="fer_python", default=None,
                   help="python of an environment with fer + tensorflow (default: skip the fer column)")
    p.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 5, 8, 10], help="detect-every values to time")
    p.add_argument("--frames", type=int, default=150, help="frames of the speed clip (default 150)")
    p.add_argument("--faces", type=int, default=40, help="labelled faces in the accuracy clip (default 40)")
    p.add_argument("--hold", type=int, default=20, help="frames each labelled face is shown (default 20)")
    p.add_argument("--stream-sides", dest="stream_sides", type=int, nargs="*", default=[320],
                   help="other detection sizes to time at N=1 and the default N (default 320)")
    p.add_argument("--max-sides", dest="max_sides", type=int, nargs="+", default=[320, 480, 640, 960, 1280, 0])
    p.add_argument("--skip", nargs="*", default=[], choices=["speed", "accuracy", "workers", "photos"])
    p.add_argument("--write", metavar="MD", help="also write the results as a markdown page")
    args = p.parse_args()
    everies = sorted(set(args.every) | {1, DEFAULT_DETECT_EVERY})
    env = environment()
    print(env)
    sections = []
    if "workers" not in args.skip:                        # before pinning: it needs both cores
        _, text = workers_speedup(args.model)
        print(text)
        sections.append(("Worker processes (`--workers`)", text))
    one_thread()
    import emolens

    core = sorted(os.sched_getaffinity(0))[0]
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        rec = emolens.Recognizer(model=args.model, threads=1, max_side=480)
        if "speed" not in args.skip:
            frames = moving_face_clip(args.frames)
            fer = fer_times(args.fer_python, frames, core)
            if not isinstance(fer, dict):
                print(f"fer: {fer}")
            recognizers = {480: rec} | {side: emolens.Recognizer(model=args.model, threads=1, max_side=side)
                                        for side in args.stream_sides}
            _, text = speed(recognizers, frames, everies, fer, DEFAULT_DETECT_EVERY)
            print(text)
            head = (f"One core (pinned), one thread; {args.frames} frames 640x480, one moving face; model "
                    f"`{args.model}`, detector retinaface on a copy of the frame at most `max_side` px (the "
                    "detection size, `--max-side`: 320 for streams, `emolens video`, `webcam` and a Python Recognizer's "
                    "stream, the table in emolens/vision/detection_size.py). fer: "
                    + (f"`FER(mtcnn=False)` (Haar cascade + mini-Xception), found {fer['faces']:.2f} faces per frame."
                       if isinstance(fer, dict) else fer))
            sections.append(("Speed: detection every N frames, and the fer package", head + "\n\n" + text))
        if "accuracy" not in args.skip:
            if FER_DATA.exists():
                from emolens.vision.detection_size import STREAM as STREAM_MAX_SIDE

                stream_rec = emolens.Recognizer(model=args.model, threads=1, max_side=STREAM_MAX_SIDE)
                _, text = accuracy(stream_rec, everies, args.faces, args.hold)
                print(text)
                sections.append(("Accuracy cost of N", f"{args.faces} FER-2013 PublicTest (validation split) faces, "
                                 f"each shown {args.hold} frames at 30 fps (144 px, moving), no smoothing; "
                                 f"detection at {STREAM_MAX_SIDE} px, the video and webcam default:\n\n" + text))
            else:
                print(f"accuracy: skipped, {FER_DATA} not found")
        if "photos" not in args.skip:
            _, text = max_side_study(args.max_sides)
            print(text)
            sections.append(("Still photos: detection size (`max_side`)", text))
    finally:
        os.sched_setaffinity(0, allowed)
    if args.write:
        command = "python benchmarks/video.py " + " ".join(sys.argv[1:])
        body = "\n\n".join(f"## {title}\n\n{text}" for title, text in sections)
        Path(args.write).write_text(f"# Video benchmark\n\nWritten by `{command}`; re-run it to refresh.\n\n"
                                    f"- When and where: {env}\n\n{body}\n")
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
