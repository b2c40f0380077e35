"""Recognition pipeline speed on 640x480 frames with one and with five faces, on 1 and 2 threads.

    python benchmarks/pipeline.py [--model default] [--detector retinaface] [--repeat 40]
                                  [--threads 1 2] [--write docs/benchmarks-pipeline.md]

For each frame and thread count it prints the median detector time, classifier time per face
(all faces of the frame in one ONNX Runtime call), end-to-end time (image in, FrameResult out:
detect + align + classify) and frames per second; and, measured in the same run, the naive path
(the same detector, then each face aligned and classified on its own by the eager torch model)
with its ratio to the batched ONNX path. Targets: end to end <= 20 ms for one face on one core;
classifier <= 2 ms per face.

Frames are the public-domain astronaut portrait pasted on a 640x480 canvas
(``emolens.assets.face_frame``). Without bundled weights, a randomly initialised network of the
bundled model's architecture (configs/ferplus_default.yaml) is timed: same cost, meaningless labels.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


class Timing(float):
    """Median wall-clock ms (the float value), with ``.cpu``: median CPU ms of the whole process.

    On one thread, CPU time is what the call costs when it has a core to itself: far steadier than
    wall time while other processes compete for the cores."""

    cpu: float

    def __new__(cls, wall: float, cpu: float):
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj

    def __truediv__(self, n):
        return Timing(float(self) / n, self.cpu / n)

    def show(self, digits: int = 1) -> str:
        return f"{float(self):.{digits}f} ({self.cpu:.{digits}f})"


def median_ms(fn, repeat: int, warmup: int = 5) -> Timing:
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return Timing(statistics.median(wall), statistics.median(cpu))


def model_for_timing(name: str) -> tuple[str, str]:
    """(weights path or name, note): the bundled model, or a same-architecture stand-in."""
    from emolens.models.resolve import resolve_weights

    try:
        return str(resolve_weights(name)), f"`{name}` ({resolve_weights(name).name})"
    except Exception:  # noqa: BLE001  (no bundled weights yet)
        import torch
        import yaml

        from emolens.models.registry import create_model
        from emolens.models.weights import ModelSpec, save_model

        cfg = yaml.safe_load((REPO / "configs" / "ferplus_default.yaml").read_text())
        options = cfg.get("model_options", {})
        torch.manual_seed(0)
        model = create_model(cfg.get("model", "vgg_fer"), num_classes=8, **options)
        path = Path(tempfile.mkdtemp()) / "standin.safetensors"
        classes = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
        save_model(model, ModelSpec(name="standin", arch=cfg.get("model", "vgg_fer"), classes=classes,
                                    options=options), path)
        arch = cfg.get("model", "vgg_fer")
        return str(path), (f"no bundled `{name}` weights yet: a randomly initialised `{arch}` with the bundled "
                           "model's options (configs/ferplus_default.yaml), same cost")


def naive_torch(rec, eager, frame: np.ndarray, tta):
    """The naive path: detect, then align and classify each face alone with eager torch."""
    from emolens.vision.align import align_face, to_grey

    dets = rec.detector.detect(frame)
    grey = to_grey(frame)
    return [eager.predict_proba(align_face(grey, d, eager.input_size, rec.pipeline.margin)[None], tta=tta)
            for d in dets]


def measure(weights: str, detector: str, threads: int, repeat: int, max_side: int | None = None,
            tta: bool | None = None) -> list[dict]:
    import cv2
    import torch

    import emolens
    from emolens.assets import face_frame
    from emolens.runtime import load_classifier

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    rec = emolens.Recognizer(model=weights, detector=detector, backend="onnx", threads=threads, max_side=max_side,
                             tta=tta)
    eager = load_classifier(weights, backend="torch")
    rows = []
    for n_faces in (1, 5):
        frame = face_frame(n_faces)
        dets = rec.detector.detect(frame)
        assert len(dets) == n_faces, f"expected {n_faces} faces, found {len(dets)}"
        crops = rec.pipeline.crops(frame, dets)
        detect = median_ms(lambda: rec.detector.detect(frame), repeat)
        align = median_ms(lambda: rec.pipeline.crops(frame, dets), repeat)
        classify = median_ms(lambda: rec.classifier.predict_proba(crops, tta=tta), repeat * 3) / n_faces
        e2e = median_ms(lambda: rec.predict(frame), repeat)
        eager_per_face = median_ms(lambda: [eager.predict_proba(c[None], tta=tta) for c in crops], repeat) / n_faces
        naive = median_ms(lambda: naive_torch(rec, eager, frame, tta), repeat)
        rows.append({"threads": threads, "faces": n_faces, "detect": detect, "align": align, "classify": classify,
                     "e2e": e2e, "eager_per_face": eager_per_face, "naive": naive})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table; each time is "wall (CPU)" in ms, medians."""
    head = ("| threads | faces | detector ms | align ms (all faces) | classifier ms/face (ONNX, batched) | "
            "end-to-end ms | FPS wall (CPU) | naive: eager torch ms/face | classifier speed-up | "
            "naive: end-to-end ms | end-to-end speed-up |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        e2e, naive, eager, clf = r["e2e"], r["naive"], r["eager_per_face"], r["classify"]
        lines.append(f"| {r['threads']} | {r['faces']} | {r['detect'].show()} | {r['align'].show(2)} | "
                     f"{clf.show(2)} | {e2e.show()} | {1000 / e2e:.0f} ({1000 / max(e2e.cpu, 1e-9):.0f}) | "
                     f"{eager.show(2)} | {eager / clf:.1f}x ({eager.cpu / max(clf.cpu, 1e-9):.1f}x) | {naive.show()} | "
                     f"{naive / e2e:.2f}x ({naive.cpu / max(e2e.cpu, 1e-9):.2f}x) |")
    return "\n".join(lines)


# ---------------------------------------------------------------- detector study (issue 27)

OOD = REPO.parent / "shared" / "data" / "ood-dev"


def mixed_photo():
    """1280x960, astronaut heads of five sizes (faces about 180, 90, 45, 27 and 18 px wide)."""
    import cv2

    from emolens.assets import astronaut

    head = astronaut()[20:300, 110:390]
    canvas = np.full((960, 1280, 3), 96, np.uint8)
    for side, (x, y) in zip((400, 200, 100, 60, 40), ((40, 40), (560, 80), (900, 120), (700, 600), (1000, 700))):
        canvas[y:y + side, x:x + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
    return canvas


def study_images() -> list[tuple[str, list[np.ndarray]]]:
    """(set name, RGB images): the JAFFE and CK+ dev frames, and multi-face photos made from the
    bundled portrait at several scales."""
    import cv2

    from emolens.assets import face_frame
    from emolens.vision.images import load_image

    sys.path.insert(0, str(Path(__file__).parent))
    from video import group_photo

    group = group_photo()[0]
    photos = [face_frame(n, size) for n, size in ((1, (640, 480)), (2, (640, 480)), (5, (640, 480)), (10, (640, 480)),
                                                  (5, (1280, 960)), (15, (1920, 1080)))]
    photos += [mixed_photo(), group, cv2.resize(group, (2000, 1500), interpolation=cv2.INTER_AREA)]
    sets = [(f"{name} dev", [load_image(p)[0] for p in sorted((OOD / folder).glob("*/*.png"))])
            for name, folder in (("JAFFE", "jaffe"), ("CK+", "ckplus48"))]
    return [s for s in sets if s[1]] + [("multi-face photos (9, 1-24 faces, 18-300 px)", photos)]


def retinaface_int8(threads: int):
    """RetinaFace with its network quantised (QDQ, per-channel) on frames made from the portrait."""
    import onnxruntime as ort
    from retinaface.weights import WEIGHTS

    from emolens.assets import face_frame
    from emolens.runtime.quantize import quantize_int8
    from emolens.vision.detectors import create_detector

    det = create_detector("retinaface", threads=threads)
    frames = [face_frame(n, (320, 240), offset=(dx, 0)) for n in (1, 2, 5) for dx in (-20, 0, 20)]
    blobs = np.stack([(f[..., ::-1].astype(np.float32) - (104, 117, 123)).transpose(2, 0, 1) for f in frames])
    import onnx
    from onnx import version_converter

    # the package's graph is opset 11; per-channel weights need DequantizeLinear's axis (opset 13)
    graph = version_converter.convert_version(onnx.load_from_string(bytes(WEIGHTS)), 13)
    data = quantize_int8(graph.SerializeToString(), blobs, det.input_name, batch=1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    det.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    det.name = "retinaface-int8"
    return det


def study_detectors(threads: int = 1) -> list[tuple[str, object, int]]:
    """(label, detector, detection size) of each option studied; yuface when its package imports."""
    from emolens.vision.detection_size import FIRST_PASS, PHOTO
    from emolens.vision.detectors import create_detector, detector_info

    def det(name="retinaface", first_pass=0):
        return create_detector(name, threads=threads, first_pass=first_pass)

    out = [("RetinaFace 480, one pass (the reference)", det(), 480), ("RetinaFace 960 (the photo size), one pass", det(), PHOTO),
           ("RetinaFace 320, one pass", det(), 320), ("RetinaFace 240, one pass", det(), 240)]
    int8 = retinaface_int8(threads)
    out += [("RetinaFace INT8 480, one pass", int8, 480), ("RetinaFace INT8 320, one pass", int8, 320)]
    if detector_info("yuface").available():
        out += [("YuNet (yuface) 480, one pass", det("yuface"), 480), ("YuNet (yuface) 320, one pass", det("yuface"), 320)]
    for first in sorted({FIRST_PASS, 160, 320}, reverse=True):
        mark = " (the photo default)" if first == FIRST_PASS else ""
        out += [(f"two passes, RetinaFace {first} then {PHOTO} when unsure{mark}", det(first_pass=first), PHOTO)]
    out += [(f"two passes, RetinaFace {FIRST_PASS} then 480 when unsure", det(first_pass=FIRST_PASS), 480)]
    return out


def detector_study(repeat: int, threads: int = 1) -> tuple[list[dict], str]:
    """Each option's detection time on the 640x480 one-face frame and its recall against the
    reference (RetinaFace at 480, one pass): a reference face counts as kept when a detection
    overlaps it (IoU >= 0.3)."""
    from emolens.assets import face_frame
    from emolens.vision.tracking import iou_matrix

    sets = study_images()
    options = study_detectors(threads)
    ref_det, ref_side = options[0][1], options[0][2]
    refs = {name: [np.array([d.box for d in ref_det.detect(im, ref_side)]).reshape(-1, 4) for im in images]
            for name, images in sets}
    frame = face_frame(1)
    rows = []
    for label, det, side in options:
        t = median_ms(lambda: det.detect(frame, side), repeat)
        row = {"option": label, "detect": t}
        for name, images in sets:
            kept = total = extra = 0
            det.passes = {"first": 0, "full": 0}
            for im, ref in zip(images, refs[name]):
                found = np.array([d.box for d in det.detect(im, side)]).reshape(-1, 4)
                hit = iou_matrix(ref, found).max(axis=1) >= 0.3 if len(ref) and len(found) else np.zeros(len(ref), bool)
                kept, total = kept + int(hit.sum()), total + len(ref)
                extra += max(0, len(found) - int(hit.sum()))
            row[name] = (kept, total, extra, dict(det.passes))
        rows.append(row)
    names = [name for name, _ in sets]
    head = ("| option | detection ms, 640x480 one face, wall (CPU) | " + " | ".join(f"{n}: reference faces kept (others found)"
                                                                           for n in names) + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = []
        for n in names:
            kept, total, extra, passes = r[n]
            second = f"; the first pass answered {passes['first']} of {len(refs[n])}" if passes["first"] else ""
            cells.append(f"{kept} of {total}{' (+%d)' % extra if extra else ''}{second}")
        lines.append(f"| {r['option']} | {r['detect'].show()} | " + " | ".join(cells) + " |")
    return rows, "\n".join(lines)


def environment() -> str:
    import cv2
    import onnxruntime
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {cpu}, {os.cpu_count()} cores; load average "
            f"(1/5/15 min) at start {load}; Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
            f"torch {torch.__version__}, OpenCV {cv2.__version__}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--detector", default="retinaface")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=40)
    p.add_argument("--max-side", dest="max_side", type=int, default=480,
                   help="detector input limit (default 480: frames run at 480x360, the size docs/recognition.md "
                        "reports; a Recognizer's photo default, 960, detects these frames at full size, as 0 does)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=False,
                   help="classify mirrored faces too (default off, as in Recognizer)")
    p.add_argument("--write", metavar="MD", help="also write the results as a markdown page")
    p.add_argument("--note", default="", help="a line added to the page (e.g. what else was running)")
    p.add_argument("--study", action="store_true",
                   help="also the detector study (issue 27), one thread: RetinaFace at 480/960/320/240 and INT8, YuNet "
                        "(yuface, when installed) and two passes; time on the one-face frame, recall against RetinaFace "
                        "at 480 on the JAFFE and CK+ dev frames and on multi-face photos")
    p.add_argument("--variants", action="store_true",
                   help="also time other settings on one thread: full-size detection (max_side 0), and flip TTA")
    args = p.parse_args()

    weights, model_note = model_for_timing(args.model)

    model_note += "; flip TTA on (two forward passes per face)" if args.tta else "; no TTA (one forward pass per face)"
    model_note += "; precision auto (the INT8 network where its parity holds, as for the bundled models)"
    env = environment()
    rows = []
    for threads in args.threads:
        rows += measure(weights, args.detector, threads, args.repeat, args.max_side, args.tta)
    text = table(rows)
    print(env)
    from emolens.vision.detection_size import FIRST_PASS

    side = f", max_side {args.max_side}" if args.max_side is not None else ""
    side += f", two passes ({FIRST_PASS} px first, max_side when unsure)"
    print(f"model: {model_note}; detector: {args.detector}{side}; median of {args.repeat} runs")
    print(text)
    one = next(r for r in rows if r["threads"] == 1 and r["faces"] == 1) if 1 in args.threads else None
    if one:
        print(f"targets (1 thread, 1 face): end-to-end {one['e2e'].show()} ms wall (CPU), target <= 20; "
              f"classifier {one['classify'].show(2)} ms/face, target <= 2")
    variants = []
    if args.variants:
        for label, side, v_tta in (("full-size detection, max_side 0 (TTA as above)", 0, args.tta),
                                   ("flip TTA on (detection as above)", args.max_side, True),
                                   ("full-size detection and flip TTA", 0, True)):
            v_text = table(measure(weights, args.detector, 1, args.repeat, side, v_tta))
            variants.append((label, v_text))
            print(f"\nvariant, 1 thread: {label}\n{v_text}")
    study = None
    if args.study:
        study = detector_study(args.repeat)[1]
        print(f"\ndetector study, 1 thread\n{study}")
    if args.write:
        write_page(Path(args.write), env, model_note, args, text, one, variants, study)
        print(f"wrote {args.write}", file=sys.stderr)


def write_page(path: Path, env: str, model_note: str, args, text: str, one: dict | None,
               variants: list[tuple[str, str]], study: str | None = None) -> None:
    lines = ["# Recognition pipeline benchmark", "",
             "Written by `python benchmarks/pipeline.py --variants --write docs/benchmarks-pipeline.md`; re-run it to "
             "refresh.",
             "",
             f"- When and where: {env}",
             f"- Model: {model_note}; detector `{args.detector}`"
             + (f" with max_side {args.max_side}" if args.max_side is not None else "")
             + f"; backend ONNX Runtime; median of {args.repeat} runs.",
             "- Frames: 640x480, the public-domain astronaut portrait (one face ~160 px wide), or five "
             "~40 px heads side by side (`emolens.assets.face_frame`).",
             "- End-to-end: numpy RGB frame in, `FrameResult` out (detect + align + one batched classifier call).",
             "- Naive: the same detector, then each face aligned and classified alone by the eager torch model; "
             "speed-ups are naive / batched ONNX, measured in the same run.",
             "- Each time is `wall (CPU)`: median wall-clock ms, and in brackets the median CPU ms the process "
             "used. On one thread the CPU figure is the cost with a core to oneself, so it stays meaningful "
             "while other processes load the machine; with 2 threads it adds up both threads."]
    if args.note:
        lines.append(f"- Note: {args.note}")
    lines += ["", text, ""]
    if one:
        lines += [f"Targets on one thread, one face: end-to-end {one['e2e'].show()} ms (target <= 20 ms); classifier "
                  f"{one['classify'].show(2)} ms per face (target <= 2 ms).", ""]
    if variants:
        lines += ["## Other settings, one thread", "",
                  "The table above detects on a copy at most 480 px on its longer side (480x360 for these "
                  "frames), which finds faces down to about 20 px wide in a 640x480 frame. "
                  "`Recognizer(max_side=0)` / `--max-side 0` detects on the full frame (faces down to about "
                  "16 px, and slower); `tta=True` also classifies the mirrored face (two passes per face).", ""]
        for label, v_text in variants:
            lines += [f"### {label}", "", v_text, ""]
    if study:
        lines += ["## Detector study (issue 27), one thread", "",
                  "Which detector and size a still frame should use. Time: the 640x480 frame with one face. Recall: "
                  "the faces RetinaFace finds at 480 px in one pass (the reference) that each option keeps (a "
                  "detection with IoU >= 0.3), and in brackets the faces it finds besides; on the JAFFE and CK+ dev "
                  "frames (../shared/data/ood-dev; JAFFE 256x256 and CK+ 48x48, smaller than every size here, so each "
                  "is detected whole) and on multi-face photos made from the portrait (`face_frame` with 1, 2, 5 and "
                  "10 heads at 640x480, 5 at 1280x960, 15 at 1920x1080; five heads of 18-180 px face width at "
                  "1280x960; the 24-head 4000x3000 group photo of benchmarks/video.py and its 2000x1500 copy). "
                  "RetinaFace INT8: its network quantised here (QDQ, per-channel weights, calibrated on frames of the "
                  "portrait), not shipped. Two passes: RetinaFace at the stream size, and at the photo size only when "
                  "that pass is unsure (`FaceDetector.sure`).", "", study, ""]
    from emolens.files import atomic_write_text

    atomic_write_text(path, "\n".join(lines))


if __name__ == "__main__":
    main()
