"""`emolens video` keeps the input's audio track in the annotated video (copied in time, or re-encoded
when the output container cannot hold it), and writes its default CSV and plots beside the input."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from emolens.assets import face_frame
from emolens.cli import main

FPS, SECONDS, RATE, TONE = 10, 2.0, 16000, 440.0


def clip_with_audio(path: Path, audio_codec: str = "aac", rate: int = RATE) -> Path:
    """A 2-second H.264 clip of one moving face with a 440 Hz tone, written by PyAV."""
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    audio = out.add_stream(audio_codec, rate=rate, layout="mono")
    for i in range(int(FPS * SECONDS)):
        rgb = face_frame(1, size=(320, 240), offset=(i, 0))
        out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
    t = np.arange(int(rate * SECONDS)) / rate
    tone = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * TONE * t)).astype(np.float32)[None], format="flt",
                                      layout="mono")
    tone.sample_rate, tone.pts = rate, 0
    out.mux(audio.encode(tone))
    out.mux(video.encode(None))
    out.mux(audio.encode(None))
    out.close()
    return path


def audio_of(path: Path) -> tuple[str, int, np.ndarray]:
    """(codec, sample rate, mono samples) of the first audio track."""
    with av.open(str(path)) as c:
        assert c.streams.audio, f"{path} has no audio track"
        stream = c.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float32).reshape(f.samples, -1).mean(axis=1)
                  if f.format.is_packed else f.to_ndarray().astype(np.float32).mean(axis=0) for f in c.decode(stream)]
        return stream.codec_context.name, stream.codec_context.sample_rate, np.concatenate(frames)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_the_annotated_video_keeps_the_audio_track(tmp_path, tiny_model, capsys, suffix):
    src = clip_with_audio(tmp_path / "clip.mp4")
    out = tmp_path / f"annotated{suffix}"
    assert main(["video", str(src), "--out", str(out), "--model", str(tiny_model), "--no-progress", "--no-plots"]) == 0
    assert f"wrote annotated video: {out} (with the input's audio track)" in capsys.readouterr().out
    _, rate, samples = audio_of(out)
    _, src_rate, src_samples = audio_of(src)
    assert len(samples) / rate == pytest.approx(len(src_samples) / src_rate, abs=0.1)   # AVI keeps AAC's priming
    assert dominant_hz(samples, rate) == pytest.approx(TONE, abs=5)
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == FPS * SECONDS or sum(1 for _ in c.decode(video=0)) == FPS * SECONDS


def test_audio_the_container_cannot_hold_is_re_encoded(tmp_path, tiny_model):
    src = clip_with_audio(tmp_path / "clip.mkv", "libopus", 48000)          # Opus: AVI cannot hold it
    out = tmp_path / "annotated.avi"
    assert main(["video", str(src), "--out", str(out), "--model", str(tiny_model), "--no-progress", "--no-plots"]) == 0
    codec, rate, samples = audio_of(out)
    assert codec != "opus" and dominant_hz(samples, rate) == pytest.approx(TONE, abs=5)


def test_a_video_without_audio_stays_without(tmp_path, tiny_model, capsys):
    src = tmp_path / "silent.mp4"
    with av.open(str(src), "w") as c:
        video = c.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        for i in range(5):
            c.mux(video.encode(av.VideoFrame.from_ndarray(face_frame(1, size=(320, 240)), format="rgb24")))
        c.mux(video.encode(None))
    out = tmp_path / "annotated.mp4"
    assert main(["video", str(src), "--out", str(out), "--model", str(tiny_model), "--no-progress", "--no-plots"]) == 0
    assert "audio track" not in capsys.readouterr().out
    with av.open(str(out)) as c:
        assert not c.streams.audio


def test_default_csv_and_plots_go_beside_the_input(tmp_path, tiny_model, monkeypatch, capsys):
    (tmp_path / "videos").mkdir()
    src = clip_with_audio(tmp_path / "videos" / "clip.mp4")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["video", str(src), "--model", str(tiny_model), "--no-progress"]) == 0
    assert f"wrote timeline csv: {src.parent / 'clip_timeline.csv'}" in capsys.readouterr().out
    assert (src.parent / "clip_timeline.csv").is_file() and (src.parent / "clip_timeline_overview.png").is_file()
    assert list(elsewhere.iterdir()) == []
