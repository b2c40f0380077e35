"""``emolens batch`` on a real Dask LocalCluster (2 worker processes, one per test session): rows
equal to what ``emolens predict`` and ``emolens video`` give, the Parquet schema and metadata,
videos split at keyframes giving the whole file's frames and labels, fsspec URLs, resuming
(skipping what is done, refusing other settings, --overwrite), a worker killed mid-job and the
whole job SIGKILLed and rerun (every row exactly once), and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")
pq = pytest.importorskip("pyarrow.parquet")

import emolens  # noqa: E402
from emolens.assets import face_frame  # noqa: E402
from emolens.cli import main  # noqa: E402
from emolens.cluster.sources import expand_sources  # noqa: E402
from emolens.errors import EmolensError  # noqa: E402

cv2.setNumThreads(1)

FPS, FRAMES, GOP = 12, 36, 6          # a 3 s clip with a keyframe every half second


def write_clip(path: Path, frames: int = FRAMES) -> Path:
    """Two astronaut heads drifting right, H.264 with B-frames and a keyframe every GOP frames."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.options = {"bf": "2", "sc_threshold": "0"}
        for i in range(frames):
            rgb = face_frame(2, size=(320, 240), offset=(i - 18, 0))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Five small photos (0, 1 or 2 faces; one in a subfolder), a file that is no image, one clip."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "sub").mkdir()
    for i in range(5):
        target = root / ("sub" if i == 4 else "") / f"img{i}.png"
        cv2.imwrite(str(target), face_frame(i % 3, size=(320, 240), offset=(4 * i, 0))[..., ::-1])
    (root / "broken.jpg").write_bytes(b"not an image")
    write_clip(root / "clip.mp4")
    return root


def run(sources, out, client, **options):
    return emolens.batch(sources, out, client=client, progress=False, **options)


def read(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out).sort_values(["source", "segment", "frame_index", "face"], na_position="first")


def test_rows_equal_predict_and_video(corpus, dask_client, tmp_path):
    out = tmp_path / "rows"
    summary = run([str(corpus)], out, dask_client, chunk=2)
    assert (summary.inputs, summary.skipped, len(summary.errors), summary.failed) == (7, 0, 1, [])
    df = read(out)
    assert summary.rows == len(df) and summary.faces == int(df.face.notna().sum())

    # the schema: typed columns in this order, the model's classes, and the job in the metadata
    schema = pq.read_schema(next(out.glob("part-*.parquet")))
    rec = emolens.Recognizer()
    assert schema.names == ["source", "frame_index", "timestamp", "segment", "track_id", "face", "x1", "y1", "x2",
                            "y2", "score", "confidence", "label", *[f"p_{c}" for c in rec.classes], "error"]
    types = {f.name: str(f.type) for f in schema}
    assert [types[c] for c in ("source", "frame_index", "timestamp", "segment", "track_id", "face", "x1",
                               "confidence", "label", "error")] == \
        ["string", "int64", "double", "int32", "int64", "int32", "float", "float", "string", "string"]
    job = json.loads(schema.metadata[b"emolens"])
    assert job["emolens_version"] == emolens.__version__ and job["detector"] == "retinaface"
    assert job["model"]["name"] == rec.info()["name"] and job["model"]["sha256"] == rec.info()["sha256"]
    assert job["options"]["detection_size"] == {"photo": 960, "stream": 320}

    # images: the rows `emolens predict --csv` writes (an image with no face has one empty row)
    predicted = tmp_path / "predict.csv"
    assert main(["predict", str(corpus), "--csv", str(predicted), "-q", "--no-progress"]) == 0
    expected = pd.read_csv(predicted).sort_values(["source", "face"], na_position="first")
    images = df[df.frame_index.isna() & df.error.isna()]
    assert list(images.source) == list(expected.source) and len(images) == 6
    assert images.face.isna().sum() == 2                                    # img0.png and img3.png
    assert list(images.label.fillna("")) == list(expected.label.fillna(""))
    numbers = ["face", "x1", "y1", "x2", "y2", "score", "confidence", *[f"p_{c}" for c in rec.classes]]
    np.testing.assert_allclose(images[numbers].to_numpy(float), expected[numbers].to_numpy(float), atol=1e-4)
    assert images.segment.eq(0).all() and images.track_id.isna().all() and images.timestamp.isna().all()
    broken = df[df.error.notna()]
    assert list(broken.source) == [str(corpus / "broken.jpg")] and "cannot be identified" in broken.error.iloc[0]

    # the video: the rows of `emolens video --csv` (one per face per frame, tracked and smoothed)
    timeline = tmp_path / "clip.csv"
    assert main(["video", str(corpus / "clip.mp4"), "--csv", str(timeline), "--no-plots", "--no-progress"]) == 0
    expected = pd.read_csv(timeline).sort_values(["frame_index", "track_id"])
    video = df[df.source == str(corpus / "clip.mp4")].sort_values(["frame_index", "track_id"])
    assert len(video) == len(expected) >= FRAMES                             # two faces on most frames
    assert list(video.frame_index) == list(expected.frame_index) and list(video.label) == list(expected.label)
    assert list(video.track_id) == list(expected.track_id)
    # (the CSV writes boxes to 0.1 px, times to 1 ms, the rest to 4 decimals)
    for columns, atol in ((["x1", "y1", "x2", "y2"], 0.051), (["timestamp"], 5e-4)):
        np.testing.assert_allclose(video[columns].to_numpy(float), expected[columns].to_numpy(float), atol=atol)
    numbers = [ "score", "confidence", *[f"p_{c}" for c in rec.classes]]
    np.testing.assert_allclose(video[numbers].to_numpy(float), expected[numbers].to_numpy(float), atol=6e-5)


def test_segments_give_the_whole_files_frames_and_labels(corpus, dask_client, tmp_path):
    clip = str(corpus / "clip.mp4")
    options = {"detect_every": 1, "smooth": 0}
    run([clip], tmp_path / "whole", dask_client, **options)
    summary = run([clip], tmp_path / "split", dask_client, segment=1.0, **options)
    whole, split = read(tmp_path / "whole"), read(tmp_path / "split")
    assert summary.parts == 3 and sorted(split.segment.unique()) == [0, 1, 2]       # 1 s each at 12 fps
    assert split.groupby("segment").frame_index.min().tolist() == [0, 12, 24]
    key = ["frame_index", "x1"]
    whole, split = whole.sort_values(key), split.sort_values(key)
    assert list(split.frame_index) == list(whole.frame_index) and list(split.label) == list(whole.label)
    np.testing.assert_allclose(split[["timestamp", "x1", "p_happy"]].to_numpy(float),
                               whole[["timestamp", "x1", "p_happy"]].to_numpy(float), atol=1e-5)
    # tracks restart in each segment
    assert split.groupby("segment").track_id.min().tolist() == [1, 1, 1]
    assert whole.track_id.nunique() == 2


def test_fsspec_urls_lists_and_globs(corpus, dask_client, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# two photos\n{corpus / 'img1.png'}\n\n{corpus}/sub/*.png\n")
    assert [i.source for i in expand_sources([], listing)] == [str(corpus / "img1.png"), str(corpus / "sub/img4.png")]
    assert [(i.source, i.kind) for i in expand_sources([f"{corpus}/*.mp4", str(corpus / "notes.txt")])] == \
        [(str(corpus / "clip.mp4"), "video"), (str(corpus / "notes.txt"), "unknown")]
    with pytest.raises(EmolensError, match="no image or video files"):
        run([str(tmp_path / "nothing*.png")], tmp_path / "none", dask_client)

    url = f"file://{corpus}"
    assert [i.source for i in expand_sources([url])] == [f"{url}/broken.jpg", f"{url}/clip.mp4", f"{url}/img0.png",
                                                        f"{url}/img1.png", f"{url}/img2.png", f"{url}/img3.png",
                                                        f"{url}/sub/img4.png"]
    local = run([str(corpus / "img2.png"), str(corpus / "clip.mp4")], tmp_path / "local", dask_client)
    remote = run([f"{url}/img2.png", f"{url}/clip.mp4", f"{url}/missing.png"], tmp_path / "remote", dask_client)
    a, b = read(tmp_path / "local"), read(tmp_path / "remote")
    assert remote.errors == [f"{url}/missing.png: no such file"] and local.rows + 1 == remote.rows
    b = b[b.error.isna()]
    assert list(b.source.str.replace("file://", "")) == list(a.source)
    np.testing.assert_allclose(b[["x1", "p_happy"]].to_numpy(float), a[["x1", "p_happy"]].to_numpy(float))


def test_rerun_skips_done_inputs_and_refuses_other_settings(corpus, dask_client, tmp_path):
    out = tmp_path / "resume"
    first = run([str(corpus)], out, dask_client, chunk=3)
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    again = run([str(corpus)], out, dask_client, chunk=3)
    assert (again.skipped, again.rows, again.parts) == (7, 0, 0)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == parts
    # an input added later is the only work of the next run
    extra = tmp_path / "more"
    extra.mkdir()
    cv2.imwrite(str(extra / "new.png"), face_frame(1, size=(320, 240))[..., ::-1])
    grown = run([str(corpus), str(extra)], out, dask_client, chunk=3)
    assert (grown.inputs, grown.skipped, grown.rows) == (8, 7, 1)
    assert len(read(out)) == first.rows + 1
    # a bar just above the least confident face's answer, so at least that face turns uncertain, whatever
    # the model's confidence on these frames
    bar = min(round(float(read(out).confidence.min()) + 1e-4, 6), 1.0)
    with pytest.raises(EmolensError, match=rf"other settings \(options.min_confidence: None -> {bar}\).*--overwrite"):
        run([str(corpus)], out, dask_client, min_confidence=bar)
    replaced = run([str(corpus)], out, dask_client, min_confidence=bar, overwrite=True)
    df = read(out)
    assert replaced.skipped == 0 and len(df) == first.rows and "uncertain" in set(df.label)


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """Sixteen more photos, for jobs long enough to be killed half way."""
    root = tmp_path_factory.mktemp("many")
    for i in range(16):
        cv2.imwrite(str(root / f"m{i:02d}.png"), face_frame(1 + i % 3, size=(480, 360), offset=(i, 0))[..., ::-1])
    return root


def rows_once(df: pd.DataFrame, inputs: int) -> None:
    """Every input is there, and every (source, segment, frame, face) exactly once."""
    from collections import Counter

    keys = Counter(zip(df.source, df.segment, df.frame_index.fillna(-1), df.face.fillna(-1)))
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:5]
    assert df.source.nunique() == inputs


def test_worker_killed_mid_job_gives_every_row_once(corpus, many, dask_client, tmp_path):
    out = tmp_path / "killed"
    before = dask_client.run(os.getpid)
    result = {}
    job = threading.Thread(target=lambda: result.update(s=run([str(corpus), str(many)], out, dask_client, chunk=1)))
    job.start()
    try:
        while job.is_alive() and not list(out.glob("part-*.parquet")):
            time.sleep(0.01)
        busy = [w for w, tasks in dask_client.processing().items() if tasks] or list(before)
        assert job.is_alive()                                  # killed mid-job
        os.kill(before[busy[0]], signal.SIGKILL)
    finally:
        job.join(timeout=300)
    dask_client.wait_for_workers(2, timeout=120)
    assert set(dask_client.run(os.getpid).values()) != set(before.values())   # the nanny started a new worker
    summary = result["s"]
    assert summary.failed == [] and summary.inputs == 23
    rows_once(read(out), 23)


def descendants(pid: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def test_job_sigkilled_then_rerun_gives_every_row_once(many, dask_client, tmp_path):
    """The whole job (its local cluster with it) killed; the rerun, on another cluster (the one
    DASK_SCHEDULER_ADDRESS names), does the rest."""
    import psutil

    out = tmp_path / "sigkill"
    env = {**os.environ, "TMPDIR": str(tmp_path)}          # the local cluster's scratch space: under this test's folder
    command = [sys.executable, "-m", "emolens.cli", "batch", str(many), "--out", str(out), "--chunk", "2",
               "--no-progress"]
    proc = subprocess.Popen([*command, "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("part-*.parquet")):
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        children = [psutil.Process(pid) for pid in descendants(proc.pid)]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=60)
    assert children and not alive                          # the local cluster's workers died with the job
    assert 0 < len(list(out.glob("part-*.parquet"))) < 8
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**env, "DASK_SCHEDULER_ADDRESS": dask_client.scheduler.address})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already done" in done.stdout and "rows/s" in done.stdout
    rows_once(read(out), 16)
    assert len(list(out.glob("part-*.parquet"))) == 8
    assert not [p for p in out.iterdir() if p.name.startswith(".")]      # no part left half-written
    assert len(list(tmp_path.glob("emolens-dask-*"))) == 1                # only the killed run's scratch space
    assert not list(tmp_path.glob("dask-scratch-space"))


def test_bad_options_are_one_line_errors(corpus, tmp_path, capsys, monkeypatch):
    for argv, message in [(["--out", str(tmp_path / "o")], "name at least one SOURCE"),
                          ([str(corpus), "--out", str(tmp_path / "o"), "--chunk", "0"], "--chunk must be at least 1"),
                          ([str(corpus), "--out", str(tmp_path / "o"), "--segment", "-1"], "--segment must be"),
                          ([str(corpus), "--out", str(corpus / "img1.png")], "is a file, not a folder")]:
        assert main(["batch", *argv, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("emolens: error: ") and message in err and "\n" not in err, err
    assert (corpus / "img1.png").stat().st_size > 100                    # the input is untouched
    import emolens.cli as cli

    monkeypatch.setattr(cli, "is_installed", lambda module: module != "distributed")
    assert main(["batch", str(corpus), "--out", str(tmp_path / "o")]) == 2
    assert "`emolens batch` needs emolens[cluster]" in capsys.readouterr().err
