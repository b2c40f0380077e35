"""Every command's --help reads right: a description, help on every option, each default said once
(never "(default: None)"), one meaning per option name; counts read right in the singular."""

from __future__ import annotations

import argparse
import re

import pytest

from emolens.cli import build_parser
from emolens.text import plural

from test_cli_api import leaf_commands

PARSERS = dict(leaf_commands(build_parser()))


def option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The option's help as `--help` prints it (the formatter's default added)."""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def options(parser):
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS
            and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_each_option_has_help_and_says_its_default_once(command):
    parser = PARSERS[command]
    assert (parser.description or "").strip(), f"`emolens {command} --help` says nothing about what it does"
    for action in options(parser):
        text = option_help(parser, action)
        name = action.option_strings[-1]
        assert (action.help or "").strip(), f"`emolens {command} {name}` has no help"
        assert len(re.findall(r"\(default\b", text)) <= 1, f"`emolens {command} {name}`: {text}"
        assert "(default: None)" not in text, f"`emolens {command} {name}`: {text}"


@pytest.mark.parametrize("command", ["predict", "video", "webcam"])
def test_detector_threshold_and_margin_say_their_defaults(command):
    parser = PARSERS[command]
    for action in options(parser):
        if action.dest in ("min_score", "margin"):
            assert "default" in option_help(parser, action), action.dest


def test_threads_means_cpu_threads_everywhere():
    meanings = {command: option_help(p, a) for command, p in PARSERS.items() for a in options(p)
                if "--threads" in a.option_strings}
    assert meanings and all("CPU threads" in text for text in meanings.values()), meanings
    assert any("--slots" in a.option_strings for a in options(PARSERS["serve"]))


def test_smooth_defaults_agree_or_the_help_says_why():
    video, webcam = ({a.dest: a for a in options(PARSERS[c])}["smooth"] for c in ("video", "webcam"))
    assert video.default == webcam.default or f"{video.default:g}" in option_help(PARSERS["webcam"], webcam)


def test_plural():
    assert [plural(n, "track") for n in (0, 1, 2)] == ["0 tracks", "1 track", "2 tracks"]
    assert plural(1, "face") == "1 face" and plural(1234, "frame") == "1,234 frames"


def test_one_track_one_frame_read_right(capsys):
    from emolens.cli.vision import report_video
    from emolens.vision.video_job import VideoSummary

    report_video(VideoSummary("clip.mp4", 1, 1, 1, 1, 1, False, 0.1, detections=1))
    out = capsys.readouterr().out
    assert "clip.mp4: 1 frame read, 1 processed, 1 face, 1 track," in out and "detected on 1 frame," in out


def test_one_epoch_reads_right(tmp_path):
    pytest.importorskip("sklearn")
    from emolens.engine.train import summary_text
    from emolens.evaluation.metrics import compute_metrics

    metrics = compute_metrics([0, 1], [0, 1], ["a", "b"])
    text = summary_text(tmp_path, tmp_path / "m.safetensors", metrics, "val", str(tmp_path / "last.ckpt"), 30.0, 1)
    assert text.startswith("done: 1 epoch in 30 s;"), text


def test_wall_times_read_in_a_unit_that_fits():
    from emolens.text import duration

    assert [duration(s) for s in (0, 42, 150, 5400, 6228)] == ["0 s", "42 s", "2.5 min", "1.50 h", "1.73 h"]


def test_data_stats_has_one_all_row():
    from emolens.data.stats import format_stats

    flat = {"source": "faces/", "classes": ["happy", "sad"], "total": 3,
            "splits": {"all": {"per_class": {"happy": 2, "sad": 1}, "total": 3}}}
    assert [line.split()[0] for line in format_stats(flat).splitlines()[3:]] == ["all"]
    two = {"source": "fer.csv", "classes": ["happy", "sad"], "total": 5,
           "splits": {"Training": {"per_class": {"happy": 2, "sad": 1}, "total": 3},
                      "PublicTest": {"per_class": {"happy": 1, "sad": 1}, "total": 2}}}
    rows = format_stats(two).splitlines()[3:]
    assert [r.split()[0] for r in rows] == ["Training", "PublicTest", "all"] and rows[-1].split()[1:] == ["3", "2", "5"]
