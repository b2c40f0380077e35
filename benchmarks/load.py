"""Load and abuse check of ``emolens serve``: concurrent uploads over loopback, against the pipeline's
own speed, optionally beside slow, oversized and never-reading clients.

    python benchmarks/load.py [--clients 32] [--requests 320] [--duration 60] [--model default]
    python benchmarks/load.py --url http://127.0.0.1:8000      # a server you started yourself
    python benchmarks/load.py --tiny --requests 64             # no bundled weights needed
    python benchmarks/load.py --abuse                          # + 40 slow, 16 x 15 MiB, 8 never-reading

First measures the pipeline alone (``Recognizer.predict`` on the decoded image, in this process,
same thread count) in frames per second; then starts ``emolens serve`` in a child process on a
free loopback port (unless ``--url`` is given), sends the same JPEG from ``--clients`` concurrent
clients until ``--requests`` uploads are done or ``--duration`` seconds pass, and prints
requests/s, p50/p99 latency, error count, and the ratio pipeline FPS / served requests/s.

Target: no errors at 32 concurrent clients, and the ratio at most 2. Loopback only: other hosts
are refused. Exit status 0 when the target is met, 1 when not, 2 on a setup problem.

``--abuse`` runs, beside the normal clients and for as long as they run: ``--slow`` clients that
send one header line every ``--slow-interval`` seconds (the server must cut them off after its
header timeout), ``--oversized`` WebSocket clients each sending one ``--oversized-mb`` message
(half binary, half text; the server must refuse each from its frame header, 1009) and
``--never-reading`` WebSocket clients that send frames and never read the answers. It prints the
server's resident memory (the server process and its children, from /proc) before, at its peak and
after, and how the abusers were treated. Target then: 0 errors for the normal clients and memory
back within 100 MB of its start (the pipeline/throughput ratio is printed, not judged).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from emolens.serve.guard import is_loopback

BOUNDARY = "emolens-load-check-boundary"
MB = 1024 * 1024
#: Memory target of the abuse run: back within this of the start.
RSS_MARGIN_MB = 100


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
    from emolens.vision.images import decode_image

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


# ---------------------------------------------------------------- abuse: slow, oversized, never-reading

def process_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (``--workers``), in MB, from /proc; nan if unknown."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        except (OSError, StopIteration, ValueError):
            if p == pid:
                return float("nan")
    return total


class RssSampler(threading.Thread):
    """Samples a process tree's RSS every ``interval`` s; ``peak`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, process_rss_mb(self.pid))
            self.stop.wait(self.interval)


def ws_frame_header(opcode: int, length: int) -> bytes:
    """A client frame header (FIN, masked with a zero key, so the payload goes as is)."""
    first = bytes([0x80 | opcode])
    if length < 126:
        return first + bytes([0x80 | length]) + bytes(4)
    if length < 65536:
        return first + bytes([0x80 | 126]) + length.to_bytes(2, "big") + bytes(4)
    return first + bytes([0x80 | 127]) + length.to_bytes(8, "big") + bytes(4)


def ws_open(host: str, port: int, origin: str | None = None, timeout: float = 10.0) -> tuple[socket.socket, int]:
    """A raw WebSocket handshake on /v1/stream: (socket, HTTP status; 101 when accepted)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    origin = origin if origin is not None else f"http://{host}:{port}"
    sock.sendall((f"GET /v1/stream HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  + (f"Origin: {origin}\r\n" if origin else "") + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)             # byte by byte: what follows the head stays in the socket
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return sock, status


def read_close_code(sock: socket.socket, timeout: float) -> int | None:
    """Reads server frames until a close frame (its code) or the end of the connection (None)."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
            while len(buf) >= 2:
                opcode, length, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
                if length == 126:
                    length, at = int.from_bytes(buf[2:4], "big"), 4
                elif length == 127:
                    length, at = int.from_bytes(buf[2:10], "big"), 10
                if len(buf) < at + length:
                    break
                if opcode == 0x8:
                    payload = buf[at:at + length]
                    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                buf = buf[at + length:]
    except OSError:
        return None


def send_oversized(host: str, port: int, size: int, text: bool, timeout: float = 20.0) -> dict:
    """One WebSocket message of ``size`` bytes, streamed from a shared buffer until the server refuses it."""
    sock, status = ws_open(host, port, timeout=timeout)
    sent = 0
    try:
        if status != 101:
            return {"status": status, "sent": 0, "close_code": None}
        sock.recv(65536)                                           # the hello
        sock.sendall(ws_frame_header(0x1 if text else 0x2, size))
        chunk, code = memoryview(ZEROS), None
        try:
            while sent < size:
                if select.select([sock], [], [], 0)[0]:            # the server answered: its close frame
                    code = read_close_code(sock, timeout=5)
                    break
                n = min(len(chunk), size - sent)
                sock.sendall(chunk[:n])
                sent += n
            else:
                code = read_close_code(sock, timeout=5)
        except OSError:
            pass                                                   # reset: the server closed first
        return {"status": status, "sent": sent, "close_code": code, "refused": code == 1009 or sent < size}
    finally:
        sock.close()


ZEROS = bytes(256 * 1024)


def slow_headers(host: str, port: int, interval: float, limit_s: float) -> float:
    """Sends one header line every ``interval`` s; returns the seconds until the server hung up."""
    t0 = time.monotonic()
    sock = socket.create_connection((host, port), timeout=10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        sock.settimeout(interval)
        i = 0
        while time.monotonic() - t0 < limit_s:
            try:
                if sock.recv(4096) == b"":
                    break                                          # cut off
            except socket.timeout:
                pass
            try:
                sock.sendall(f"X-Slow-{i}: {i}\r\n".encode())
            except OSError:
                break
            i += 1
        return time.monotonic() - t0
    except OSError:
        return time.monotonic() - t0
    finally:
        sock.close()


def never_reading(host: str, port: int, frame: bytes, stop: threading.Event) -> str:
    """Sends frames and never reads an answer, until the server drops it or ``stop`` is set."""
    sock, status = ws_open(host, port)
    if status != 101:
        sock.close()
        return f"HTTP {status}"
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(2)
    try:
        while not stop.is_set():
            sock.sendall(ws_frame_header(0x2, len(frame)) + frame)
            time.sleep(0.02)
        return "kept until the end"
    except OSError:
        return "dropped by the server"
    finally:
        sock.close()


def run_abusers(host: str, port: int, frame: bytes, args, stop: threading.Event) -> tuple[list, dict]:
    """Starts the abuser threads; returns them and the dict they fill in."""
    out: dict = {"slow_s": [], "oversized": [], "never_reading": []}
    lock = threading.Lock()

    def record(key, fn, *a):
        try:
            value = fn(*a)
        except OSError as e:
            value = f"{type(e).__name__}"
        with lock:
            out[key].append(value)

    threads = [threading.Thread(target=record, args=("slow_s", slow_headers, host, port, args.slow_interval,
                                                     args.duration), daemon=True) for _ in range(args.slow)]
    threads += [threading.Thread(target=record, args=("oversized", send_oversized, host, port,
                                                      int(args.oversized_mb * MB), i % 2 == 1), daemon=True)
                for i in range(args.oversized)]
    threads += [threading.Thread(target=record, args=("never_reading", never_reading, host, port, frame, stop),
                                 daemon=True) for _ in range(args.never_reading)]
    for t in threads:
        t.start()
    return threads, out


def abuse_summary(out: dict) -> dict:
    refused = [o for o in out["oversized"] if isinstance(o, dict) and o["refused"]]
    return {
        "slow_clients": len(out["slow_s"]),
        "slow_held_max_s": round(max(out["slow_s"]), 2) if out["slow_s"] else None,
        "oversized_clients": len(out["oversized"]),
        "oversized_refused": len(refused),
        "oversized_close_1009": sum(o["close_code"] == 1009 for o in refused),
        "oversized_sent_max_mb": round(max((o["sent"] for o in refused), default=0) / MB, 2),
        "never_reading": {k: out["never_reading"].count(k) for k in set(out["never_reading"])},
    }


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
    p.add_argument("--header-timeout", type=float, default=None, help="the started server's --header-timeout")
    p.add_argument("--no-speed-target", dest="no_speed_target", action="store_true",
                   help="exit 0 on zero errors whatever the speed ratio (which is still printed): for tests, "
                        "whose verdict must not depend on the machine's speed")
    a = p.add_argument_group("abuse (beside the normal clients)")
    a.add_argument("--abuse", action="store_true", help="add the abusers below (defaults: 40, 16 x 15 MiB, 8)")
    a.add_argument("--slow", type=int, default=None, help="clients sending one header line every --slow-interval s")
    a.add_argument("--slow-interval", type=float, default=5.0)
    a.add_argument("--oversized", type=int, default=None, help="WebSocket clients sending one huge message")
    a.add_argument("--oversized-mb", type=float, default=15.0)
    a.add_argument("--never-reading", type=int, default=None, help="WebSocket clients that never read answers")
    a.add_argument("--settle", type=float, default=15.0, help="seconds to wait for memory to come back down")
    a.add_argument("--server-pid", type=int, default=None, help="with --url: the server's pid, to measure memory")
    args = p.parse_args()
    for name, default in (("slow", 40), ("oversized", 16), ("never_reading", 8)):
        if getattr(args, name) is None:
            setattr(args, name, default if args.abuse else 0)
        setattr(args, name, min(getattr(args, name), 256))
    args.abuse = bool(args.slow or args.oversized or args.never_reading)
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
            if args.header_timeout:
                cmd += ["--header-timeout", str(args.header_timeout)]
            proc = subprocess.Popen(cmd, env=env)
        wait_healthy(host, port, proc, timeout=120)
        pid = proc.pid if proc is not None else args.server_pid

        body = multipart(data, image.name)
        # warm-up: a few requests so connection setup and first-call costs are not measured
        run_load(host, port, body, clients=min(args.clients, 4), total=min(8, args.requests), duration=30)
        memory = {"rss_before_mb": process_rss_mb(pid)} if pid else {}
        sampler = RssSampler(pid) if pid else None
        if sampler:
            sampler.start()
        stop = threading.Event()
        abusers, abused = run_abusers(host, port, data, args, stop) if args.abuse else ([], {})
        result = run_load(host, port, body, args.clients, args.requests, args.duration)
        stop.set()
        for t in abusers:
            t.join(timeout=args.duration)
        if sampler:
            memory.update(settle_memory(pid, memory["rss_before_mb"], args.settle))
            sampler.stop.set()
            memory["rss_peak_mb"] = max(sampler.peak, memory["rss_after_mb"])
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
        **{k: round(v, 1) for k, v in memory.items()},
    }
    print(f"clients={args.clients}  requests={summary['requests']}  wall={summary['wall_s']} s")
    print(f"requests/s: {rps:.2f}   p50: {summary['p50_ms']} ms   p99: {summary['p99_ms']} ms   errors: {n_err}"
          + (f" {result['errors']}" if n_err else ""))
    print(f"pipeline FPS / served requests/s: {ratio:.2f}" + ("" if args.abuse else "  (target <= 2, no errors)"))
    if "rss_peak_mb" in memory:
        print(f"server memory (RSS): before {memory['rss_before_mb']:.0f} MB, peak {memory['rss_peak_mb']:.0f} MB, "
              f"after {memory['rss_after_mb']:.0f} MB")
    if args.abuse:
        summary["abuse"] = abuse_summary(abused)
        ab = summary["abuse"]
        print(f"abuse: {ab['slow_clients']} slow clients held at most {ab['slow_held_max_s']} s; "
              f"{ab['oversized_refused']}/{ab['oversized_clients']} oversized messages refused "
              f"({ab['oversized_close_1009']} with close 1009; at most {ab['oversized_sent_max_mb']} MB sent "
              f"of {args.oversized_mb:g}); never-reading: {ab['never_reading']}")
        memory_ok = "rss_after_mb" not in memory or memory["rss_after_mb"] - memory["rss_before_mb"] <= RSS_MARGIN_MB
        met = n_err == 0 and memory_ok and ab["oversized_refused"] == ab["oversized_clients"]
        print(f"target: 0 errors for normal clients, memory back within {RSS_MARGIN_MB} MB, oversized refused")
    else:
        met = n_err == 0 and (args.no_speed_target or ratio <= 2.0)
    print(json.dumps(summary))
    print("target met" if met else "target NOT met")
    return 0 if met else 1


def settle_memory(pid: int, before: float, seconds: float) -> dict:
    """Waits up to ``seconds`` for the server's RSS to come back within the margin; its last value."""
    deadline = time.monotonic() + seconds
    after = process_rss_mb(pid)
    while after - before > RSS_MARGIN_MB and time.monotonic() < deadline:
        time.sleep(0.25)
        after = process_rss_mb(pid)
    return {"rss_after_mb": after}


if __name__ == "__main__":
    sys.exit(main())
