"""The speed targets of issue 27 against the ``fer`` package, and the INT8 parity lines, in one run.

    python benchmarks/targets.py [--fer-python /work/venvs/fer/bin/python] [--rounds 30]
                                 [--write docs/benchmarks-targets.md]

One thread everywhere, this process and the fer subprocess pinned to the same CPU core, and the
measurements interleaved: each round times every row once (a median over ``--calls`` calls),
ours and fer's one after the other, so both see the same load; each row's number is the median
over ``--rounds`` rounds of CPU time per call (the cost with a core to oneself; wall time beside
it). Rows:

- still frame: a 640x480 RGB frame with one face (the portrait, ``emolens.assets.face_frame``),
  image in, FrameResult out (detect + align + classify), the ``Recognizer()`` defaults (INT8 where
  parity holds, two-pass detection); and the settings before issue 27 (float, RetinaFace at 480 in
  one pass) for reference. fer: ``FER(mtcnn=False).detect_emotions`` on the same frame (BGR).
- classifier, one face: ``Recognizer().classifier.predict_proba`` on one aligned face, one pass,
  INT8 and float; fer: ``FER._classify_emotions`` on one 64x64 grey face (its mini-Xception,
  TensorFlow Lite, the model fer runs by default). For reference, the default's INT8 network alone
  (``classifier.logits`` on the face already cropped and normalised: the ONNX Runtime call without
  emolens' preprocessing, calibration and softmax), the share of the row that the network costs.
- classifier, the fast model: the same for ``--fast-model`` (default ``ferplus-small``, the bundled
  network at 4/7 of the default's width, where it is bundled), INT8 where its parity holds.
- video: ``Recognizer().tracker()`` (detect every 8th frame at 320 px, faces tracked between) on
  a 48-frame clip of one moving face, mean per frame; and the same with the float network (the
  video path before issue 27: streams are detected in one pass at 320 px either way).

Targets: still frame <= 0.10x fer; classifier <= 1.0x fer's (the default's row; the fast model's
row beside it has the same bar); video no slower than before (the
float path, timed in the same run; 3.4 ms a frame on a quiet machine).
Without fer (``--fer-python`` missing or failing) the ratios say so and our times still print.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pipeline import median_ms  # noqa: E402  (benchmarks/pipeline.py)
from video import FER_IMPORTS  # noqa: E402  (benchmarks/video.py: fer on one thread)

DEFAULT_FER = "/work/venvs/fer/bin/python"

#: The fer side: a child process that times what the parent asks for, one command a line.
FER_CHILD = FER_IMPORTS + r"""
frame = np.load(sys.argv[1])
fer = FER(mtcnn=False)
face = np.random.default_rng(0).random((1, 64, 64)).astype(np.float32)
jobs = {"frame": lambda: fer.detect_emotions(frame), "classifier": lambda: fer._classify_emotions(face)}
faces = len(fer.detect_emotions(frame))
for job in jobs.values():
    for _ in range(5):
        job()
print(json.dumps({"ready": True, "faces": faces}), flush=True)
for line in sys.stdin:
    name, calls = line.split()
    wall, cpu = [], []
    for _ in range(int(calls)):
        t, c = time.perf_counter(), time.process_time()
        jobs[name]()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    print(json.dumps({"wall": statistics.median(wall), "cpu": statistics.median(cpu)}), flush=True)
"""


class Fer:
    """The fer package in its own interpreter, pinned to ``core``; ``time(job, calls)``."""

    def __init__(self, python: str | None, frame_bgr: np.ndarray, core: int):
        self.proc, self.why, self.faces = None, "", 0
        if not python or not Path(python).exists():
            self.why = (f"fer not measured: {python or 'no --fer-python'} does not exist (python3 -m venv "
                        "/work/venvs/fer && /work/venvs/fer/bin/pip install fer 'setuptools<81' tensorflow-cpu)")
            return
        self.tmp = tempfile.TemporaryDirectory()
        np.save(Path(self.tmp.name) / "frame.npy", frame_bgr)
        env = dict(os.environ, OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
                   CUDA_VISIBLE_DEVICES="")
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(["taskset", "-c", str(core), python, "-c", FER_CHILD,
                                      str(Path(self.tmp.name) / "frame.npy")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        reply = self._reply()
        if reply is None:
            self.why = "fer not measured: it failed to start: " + (self.proc.stderr.read().strip().splitlines() or ["?"])[-1][:300]
            self.proc = None
        else:
            self.faces = reply["faces"]

    def _reply(self) -> dict | None:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return None
            if line.startswith("{"):
                return json.loads(line)

    def time(self, job: str, calls: int) -> tuple[float, float] | None:
        if self.proc is None:
            return None
        self.proc.stdin.write(f"{job} {calls}\n")
        self.proc.stdin.flush()
        reply = self._reply()
        return (reply["wall"], reply["cpu"]) if reply else None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def timed(fn, calls: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of ``calls`` calls of ``fn``."""
    t = median_ms(fn, calls, warmup=0)
    return float(t), t.cpu


def stream_ms(rec, clip: np.ndarray) -> tuple[float, float]:
    """(wall, CPU) ms per frame, mean over the clip through a fresh tracker (its default detect-every)."""
    tracker = rec.tracker()
    wall, cpu = time.perf_counter(), time.process_time()
    for i, f in enumerate(clip):
        tracker.update(f, bgr=True, index=i, timestamp=i / 30)
    return (time.perf_counter() - wall) * 1e3 / len(clip), (time.process_time() - cpu) * 1e3 / len(clip)


def parity_lines() -> list[str]:
    """One line per model with an INT8 copy: agreement and accuracies, from its spec (scripts/quantize_model.py)."""
    from emolens.models.weights import read_spec
    from emolens.runtime.quantize import parity_holds
    from emolens.weights import bundled_names, bundled_path

    paths = [(name, bundled_path(name)) for name in bundled_names()]
    paths += [(f"members/{p.stem}", p) for p in sorted((HERE.parent / "members").glob("*.safetensors"))]
    lines = []
    for name, path in paths:
        q = read_spec(path).int8
        p = q.get("parity")
        if not p:
            lines.append(f"- `{name}`: no INT8 copy")
            continue
        lines.append(f"- `{name}`: argmax agreement {p['agreement']:.2%} on {p['split']} (n = {p['n']:,}), accuracy "
                     f"{p['accuracy_float']:.2%} float -> {p['accuracy_int8']:.2%} INT8 "
                     f"({(p['accuracy_int8'] - p['accuracy_float']) * 100:+.2f} points); flip TTA "
                     f"{p['flip_accuracy_float']:.2%} -> {p['flip_accuracy_int8']:.2%}: parity "
                     + ("holds (>= 99%, within 0.3 points): INT8 is its default" if parity_holds(q)
                        else "misses: its default stays float"))
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fer-python", dest="fer_python", default=DEFAULT_FER,
                   help=f"python of an environment with fer + tensorflow (default {DEFAULT_FER})")
    p.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    p.add_argument("--calls", type=int, default=10, help="calls per row and round (classifier rows: 5x) (default 10)")
    p.add_argument("--write", metavar="MD", help="also write the results as a markdown page")
    p.add_argument("--fast-model", dest="fast_model", default="ferplus-small",
                   help="a smaller bundled model timed in its own classifier row (default ferplus-small; "
                        "skipped when not bundled)")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["EMOLENS_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    from pipeline import environment
    from video import moving_face_clip

    import emolens
    from emolens.assets import face_frame
    from emolens.weights import bundled_names

    env = environment()
    core = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {core})
    frame = face_frame(1)
    fer = Fer(args.fer_python, np.ascontiguousarray(frame[..., ::-1]), core)
    rec = emolens.Recognizer(threads=1)                                   # the defaults
    before = emolens.Recognizer(threads=1, precision="float", max_side=480, first_pass=0)
    floats = emolens.Recognizer(threads=1, precision="float")
    dets = rec.detector.detect(frame)
    assert len(dets) == 1, f"expected one face, found {len(dets)}"
    crop = rec.pipeline.crops(frame, dets)[:1]
    prepared = rec.classifier.spec.preprocess.views(crop, "none")[0]
    clip = moving_face_clip(48)
    fast = (emolens.Recognizer(model=args.fast_model, threads=1).classifier
            if args.fast_model in bundled_names() else None)
    ours = {
        "still frame, defaults": lambda n: timed(lambda: rec.predict(frame), n),
        "still frame, before issue 27 (float, RetinaFace 480 one pass)": lambda n: timed(lambda: before.predict(frame), n),
        "classifier, one face, INT8 (default)": lambda n: timed(lambda: rec.classifier.predict_proba(crop, tta=False), 5 * n),
        "classifier, one face, network alone (INT8 ONNX Runtime call; reference)":
            lambda n: timed(lambda: rec.classifier.logits(prepared), 5 * n),
        "classifier, one face, float": lambda n: timed(lambda: floats.classifier.predict_proba(crop, tta=False), 5 * n),
        **({f"classifier, one face, `{fast.name}` {fast.precision.upper() if fast.precision == 'int8' else fast.precision} "
            "(the fast model)": lambda n: timed(lambda: fast.predict_proba(crop, tta=False), 5 * n)} if fast else {}),
        "video, detect every 8 at 320 px, ms a frame": lambda n: stream_ms(rec, clip),
        "video, before issue 27 (float)": lambda n: stream_ms(floats, clip),
    }
    fer_job = {"still frame": "frame", "classifier": "classifier"}
    samples: dict[str, list] = {k: [] for k in ours}
    fer_samples: dict[str, list] = {k: [] for k in fer_job}
    for fn in ours.values():                                              # warm up
        fn(2)
    for _ in range(args.rounds):
        for job, name in fer_job.items():
            got = fer.time(name, args.calls if job == "still frame" else 5 * args.calls)
            if got:
                fer_samples[job].append(got)
        for key, fn in ours.items():
            samples[key].append(fn(args.calls))
    fer.close()

    def med(values):
        return (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)) if values else None

    fer_med = {job: med(v) for job, v in fer_samples.items()}
    lines = ["| row | emolens ms, CPU (wall) | fer ms, CPU (wall) | ratio (CPU) | target |", "|---|---|---|---|---|"]
    verdict = {}
    for key, values in samples.items():
        wall, cpu = med(values)
        job = next((j for j in fer_job if key.startswith(j)), None)
        f = fer_med.get(job) if job else None
        ratio = cpu / f[1] if f else None
        if key == "still frame, defaults":
            target, ok = "<= 0.10x fer", ratio is not None and ratio <= 0.10
        elif key.startswith("classifier, one face, INT8") or key.endswith("(the fast model)"):
            target, ok = "<= 1.0x fer", ratio is not None and ratio <= 1.0
        elif key.startswith("video, detect"):
            float_path = med(samples["video, before issue 27 (float)"])[1]
            target, ok = "no slower than before (float path, same run; 3.4 ms on a quiet machine)", cpu <= float_path
        else:
            target, ok = "(reference)", None
        if ok is not None:
            verdict[key] = ok
        fer_cell = f"{f[1]:.2f} ({f[0]:.2f})" if f else "-"
        ratio_cell = f"{ratio:.3f}x" if ratio is not None else ("-" if job is None else "fer not measured")
        mark = "" if ok is None else (" met" if ok else " NOT met")
        lines.append(f"| {key} | {cpu:.2f} ({wall:.2f}) | {fer_cell} | {ratio_cell} | {target}{mark} |")
    table = "\n".join(lines)
    parity = parity_lines()
    head = (f"{env}\none thread, pinned to CPU {core}; median of {args.rounds} interleaved rounds of {args.calls} calls "
            f"(classifier rows {5 * args.calls}); model `{rec.classifier.name}` ({rec.classifier.precision}), detector "
            f"{rec.detector.name}, two passes ({rec.detector.first_pass} px first, then {rec.pipeline.max_side} px when "
            f"unsure; the first pass answered {rec.detector.passes['first']} of "
            f"{sum(rec.detector.passes.values())} calls)"
            + (f"; fer {fer.why}" if fer.why else f"; fer: FER(mtcnn=False), found {fer.faces} face(s) on the frame"))
    print(head)
    print(table)
    print("\nINT8 parity (PublicTest, calibrated, one pass; scripts/quantize_model.py):")
    print("\n".join(parity))
    print("\ntargets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in verdict.items()))
    if args.write:
        from emolens.files import atomic_write_text

        page = ["# Speed targets against the fer package (issue 27)", "",
                "Written by `python benchmarks/targets.py --write docs/benchmarks-targets.md`; re-run it to refresh. "
                "What each row times and how: the docstring of benchmarks/targets.py.", "",
                f"- {head}", "", table, "", "## INT8 parity", "", *parity, ""]
        atomic_write_text(Path(args.write), "\n".join(page))
        print(f"wrote {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
