"""benchmarks/load.py: refuses non-loopback targets, and a short bounded run reports its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "load.py"


def run(*args, timeout=180):
    env = dict(os.environ, EMOLENS_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://example.com", "https://127.0.0.1:8000"])
def test_only_loopback_targets(url):
    r = run("--url", url, timeout=60)
    assert r.returncode == 2
    assert "loopback" in r.stderr


def test_short_load_run_prints_figures():
    r = run("--tiny", "--clients", "8", "--requests", "24", "--duration", "60", "--baseline-seconds", "1",
            "--no-speed-target")
    assert r.returncode == 0, r.stdout + r.stderr   # zero errors; the speed ratio is reported, not judged here
    summary = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["errors"] == 0 and summary["ok"] == 24
    assert summary["requests_per_s"] > 0 and summary["p50_ms"] <= summary["p99_ms"]
    assert summary["pipeline_fps"] > 0
    assert "requests/s" in r.stdout and "p99" in r.stdout


def test_abuse_run_keeps_normal_clients_and_memory():
    """Normal uploads beside 16 clients x 15 MiB WebSocket messages, slow-header and never-reading clients:
    no errors, every oversized message refused, the server's RSS within 100 MB of its start (peak and after)."""
    r = run("--tiny", "--abuse", "--clients", "4", "--requests", "32", "--duration", "60", "--baseline-seconds", "0.5",
            "--header-timeout", "2", "--slow", "8", "--slow-interval", "0.5", "--oversized", "16",
            "--oversized-mb", "15", "--never-reading", "2", "--settle", "10")
    summary = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["errors"] == 0 and summary["ok"] == 32, r.stdout + r.stderr
    abuse = summary["abuse"]
    assert abuse["oversized_refused"] == abuse["oversized_clients"] == 16
    assert abuse["oversized_sent_max_mb"] < 15
    assert abuse["slow_clients"] == 8 and abuse["slow_held_max_s"] < 10      # header timeout 2 s
    before, peak, after = summary["rss_before_mb"], summary["rss_peak_mb"], summary["rss_after_mb"]
    assert before > 50 and peak - before < 100 and after - before < 100, (before, peak, after)
    assert "server memory (RSS): before" in r.stdout and r.returncode == 0
