"""Load check of ``emolens serve``: concurrent uploads over loopback, against the pipeline's own speed.

    python benchmarks/load.py [--clients 32] [--requests 320] [--duration 60] [--model default]
    python benchmarks/load.py --url http://127.0.0.1:8000      # a server you started yourself
    python benchmarks/load.py --tiny --requests 64             # no bundled weights needed

First measures the pipeline alone (``Recognizer.predict`` on the decoded image, in this process,
same thread count) in frames per second; then starts ``emolens serve`` in a child process on a
free loopback port (unless ``--url`` is given), sends the same JPEG from ``--clients`` concurrent
clients until ``--requests`` uploads are done or ``--duration`` seconds pass, and prints
requests/s, p50/p99 latency, error count, and the ratio pipeline FPS / served requests/s.

Target: no errors at 32 concurrent clients, and the ratio at most 2. Loopback only: other hosts
are refused. Exit status 0 when the target is met, 1 when not, 2 on a setup problem.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from emolens.serve.cli import is_loopback

BOUNDARY = "emolens-load-check-boundary"


def multipart(data: bytes, filename: str = "face.jpg", ctype: str = "image/jpeg") -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def pipeline_fps(model: str, image_bytes: bytes, seconds: float, max_frames: int) -> tuple[float, int]:
    """Frames per second of Recognizer.predict alone on the decoded image (after a warm-up)."""
    from emolens.api import Recognizer
    from emolens.serve.imageio import decode_image

    rec = Recognizer(model=model)
    rgb = decode_image(image_bytes)
    faces = len(rec.predict(rgb).faces)
    for _ in range(3):
        rec.predict(rgb)
    n, t0 = 0, time.perf_counter()
    while n < max_frames and time.perf_counter() - t0 < seconds:
        rec.predict(rgb)
        n += 1
    return n / (time.perf_counter() - t0), faces


def tiny_model(path: Path) -> Path:
    """A randomly initialised tiny vgg_fer (a few thousand weights): serving cost without the bundled model."""
    import torch

    from emolens.classes import FER2013_CLASSES
    from emolens.models.registry import create_model
    from emolens.models.weights import ModelSpec, save_model

    options = {"widths": [4, 8], "convs_per_stage": 1, "hidden": [8], "global_pool": True}
    torch.manual_seed(0)
    model = create_model("vgg_fer", num_classes=len(FER2013_CLASSES), **options).eval()
    return save_model(model, ModelSpec(name="tiny7", arch="vgg_fer", classes=list(FER2013_CLASSES), options=options),
                      path)


def wait_healthy(host: str, port: int, proc: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"load: the server exited with status {proc.returncode} while starting")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"load: no healthy server on {host}:{port} within {timeout:.0f} s")


def run_load(host: str, port: int, body: bytes, clients: int, total: int, duration: float) -> dict:
    """``clients`` threads, each with its own keep-alive connection, share a budget of ``total`` uploads."""
    lock = threading.Lock()
    budget = [total]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + duration
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(len(body))}
    start = threading.Barrier(clients + 1)

    def take() -> bool:
        with lock:
            if budget[0] <= 0 or time.monotonic() > deadline:
                return False
            budget[0] -= 1
            return True

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=max(10.0, duration))
        start.wait()
        while take():
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/predict", body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                ok = resp.status == 200 and b'"faces"' in payload
                key = None if ok else f"HTTP {resp.status}"
            except (OSError, http.client.HTTPException) as e:
                key = type(e).__name__
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=max(10.0, duration))
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if key is None:
                    latencies.append(elapsed)
                else:
                    errors[key] = errors.get(key, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(timeout=duration + 30)
    wall = time.perf_counter() - t0
    return {"ok": len(latencies), "errors": errors, "wall_s": wall, "latencies": latencies}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running server (loopback only); default: start one")
    p.add_argument("--model", default="default", help="model for the server started here and the FPS baseline")
    p.add_argument("--tiny", action="store_true", help="use a tiny random model (no bundled weights needed)")
    p.add_argument("--image", default=None, help="JPEG/PNG/WebP to upload (default: the bundled astronaut portrait)")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients")
    p.add_argument("--requests", type=int, default=320, help="total uploads (the run stops after these)")
    p.add_argument("--duration", type=float, default=60.0, help="hard cap on the load phase, seconds")
    p.add_argument("--baseline-seconds", type=float, default=5.0, help="time spent measuring the pipeline alone")
    p.add_argument("--threads", type=int, default=int(os.environ.get("EMOLENS_THREADS", "1") or 1),
                   help="runtime threads, for the baseline and the server started here")
    p.add_argument("--workers", type=int, default=1, help="server processes (server started here)")
    args = p.parse_args()
    if args.clients < 1 or args.requests < 1 or args.duration <= 0:
        p.error("--clients, --requests and --duration must be positive")
    args.requests = min(args.requests, 10_000)
    args.duration = min(args.duration, 600.0)
    os.environ["EMOLENS_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)

    image = Path(args.image) if args.image else None
    if image is None:
        from emolens.assets import ASTRONAUT

        image = ASTRONAUT
    data = image.read_bytes()

    tmp = tempfile.TemporaryDirectory(prefix="emolens-load-")
    model = args.model
    if args.tiny:
        model = str(tiny_model(Path(tmp.name) / "tiny7.safetensors"))

    proc = None
    try:
        if args.url:
            url = urllib.parse.urlparse(args.url)
            host, port = url.hostname or "", url.port or 80
            if url.scheme != "http" or not is_loopback(host):
                print("load: only http:// on a loopback address (127.0.0.1, ::1, localhost) is allowed",
                      file=sys.stderr)
                return 2
        else:
            host, port = "127.0.0.1", free_port()

        try:
            fps, n_faces = pipeline_fps(model, data, args.baseline_seconds, max_frames=1000)
        except Exception as e:  # e.g. no bundled weights yet
            print(f"load: cannot build the pipeline for {model!r}: {e}", file=sys.stderr)
            return 2
        print(f"pipeline alone: {fps:.1f} frames/s ({n_faces} face(s) per image, {args.threads} thread(s))")

        if not args.url:
            env = dict(os.environ, EMOLENS_CACHE_DIR=os.environ.get("EMOLENS_CACHE_DIR", tmp.name))
            cmd = [sys.executable, "-m", "emolens.cli", "serve", "--host", host, "--port", str(port),
                   "--model", model, "--workers", str(args.workers), "--log-level", "warning"]
            proc = subprocess.Popen(cmd, env=env)
        wait_healthy(host, port, proc, timeout=120)

        body = multipart(data, image.name)
        # warm-up: a few requests so connection setup and first-call costs are not measured
        run_load(host, port, body, clients=min(args.clients, 4), total=min(8, args.requests), duration=30)
        result = run_load(host, port, body, args.clients, args.requests, args.duration)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()

    lat = result["latencies"]
    n_err = sum(result["errors"].values())
    rps = result["ok"] / result["wall_s"] if result["wall_s"] > 0 else 0.0
    ratio = fps / rps if rps > 0 else float("inf")
    summary = {
        "clients": args.clients, "requests": result["ok"] + n_err, "ok": result["ok"], "errors": n_err,
        "error_kinds": result["errors"], "wall_s": round(result["wall_s"], 2), "requests_per_s": round(rps, 2),
        "p50_ms": round(percentile(lat, 0.50), 1), "p99_ms": round(percentile(lat, 0.99), 1),
        "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        "pipeline_fps": round(fps, 2), "fps_over_rps": round(ratio, 2),
    }
    print(f"clients={args.clients}  requests={summary['requests']}  wall={summary['wall_s']} s")
    print(f"requests/s: {rps:.2f}   p50: {summary['p50_ms']} ms   p99: {summary['p99_ms']} ms   errors: {n_err}"
          + (f" {result['errors']}" if n_err else ""))
    print(f"pipeline FPS / served requests/s: {ratio:.2f}  (target <= 2, no errors)")
    print(json.dumps(summary))
    met = n_err == 0 and ratio <= 2.0
    print("target met" if met else "target NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
