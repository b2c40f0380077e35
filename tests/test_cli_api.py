"""Every command of the command line parses its options and calls one Python API with the same
options: each option is a parameter of that call (or a key of the config it builds), except the
few that only shape what the command prints or where it writes (listed here, so adding an option
to a command without adding it to the API fails this test)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

import emolens
from emolens import tasks
from emolens.cli import COMMANDS, build_parser


def names(*apis) -> set[str]:
    """Parameter names of functions / fields of dataclasses."""
    out: set[str] = set()
    for api in apis:
        if dataclasses.is_dataclass(api):
            out |= {f.name for f in dataclasses.fields(api)}
        else:
            out |= set(inspect.signature(api).parameters)
    return out


def train_keys():
    from emolens.engine.config import TrainConfig

    return TrainConfig


def serve_settings():
    from emolens.serve.config import ServeSettings

    return ServeSettings


#: command -> (the API its options go to, {CLI option: API name} where they differ, options that
#: only shape the command's own output). The API is a list of functions / dataclasses.
MAPPING = {
    "predict": (lambda: [emolens.Recognizer, emolens.Recognizer.predict_batch], {},
                {"paths", "json", "csv", "save_dir", "top", "quiet", "no_progress", "workers"}),
    "video": (lambda: [emolens.Recognizer, emolens.Recognizer.predict_video],
              {"smooth": "half_life", "track_patience": "patience"},
              {"inputs", "out", "csv", "plots", "no_plots", "no_progress", "workers"}),
    # --threads is hidden on batch: every worker runs on one thread
    "batch": (lambda: [emolens.batch], {"list": "list_file", "storage_option": "storage_options",
                                        "track_patience": "patience", "no_progress": "progress"}, {"threads"}),
    "webcam": (lambda: [emolens.Recognizer, emolens.Recognizer.tracker],
               {"smooth": "half_life", "track_patience": "patience"}, {"device", "no_mirror", "max_frames"}),
    "train": (lambda: [tasks.train, train_keys()], {"no_progress": "progress", "model_option": "model_options"},
              {"set"}),
    "evaluate": (lambda: [tasks.evaluate], {}, {"json"}),
    "calibrate": (lambda: [tasks.calibrate], {"no_operating_point": "operating_point", "no_ship_rule": "ship_rule"},
                  set()),
    "retrain-head": (lambda: [tasks.retrain_head], {}, set()),
    "average": (lambda: [tasks.average], {}, set()),
    "export": (lambda: [tasks.export], {}, set()),
    "data stats": (lambda: [tasks.data_stats], {}, {"json"}),
    "crop": (lambda: [tasks.crop], {"no_progress": "progress"}, set()),
    "data audit": (lambda: [tasks.audit], {"no_progress": "progress"}, set()),
    "serve": (lambda: [serve_settings()], {"allow_host": "allow_hosts", "allow_origin": "allow_origins",
                                           "body_timeout": "body_timeout_s", "header_timeout": "header_timeout_s",
                                           "max_message_mb": "max_frame_bytes", "max_upload_mb": "max_upload_bytes"},
              set()),
    "experiment": (lambda: [tasks.experiment], {"record_command": "command"}, set()),
    "ensemble tune": (lambda: [tasks.ensemble_tune], {"no_ship_rule": "ship_rule"}, set()),
    "ensemble pack": (lambda: [tasks.ensemble_pack], {}, set()),
    "models": (lambda: [], {}, set()),
    "detectors": (lambda: [], {}, set()),
}


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, its parser) for every command that takes options (sub-commands expanded)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs and prefix:
        yield " ".join(prefix), parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaf_commands(sub, prefix + (name,))


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}


def test_every_command_is_mapped():
    commands = {name for name, _ in leaf_commands(build_parser())}
    assert commands == set(MAPPING), "add the new command to MAPPING with the API call it makes"
    assert {c.name for c in COMMANDS} == {name.split()[0] for name in commands}


@pytest.mark.parametrize("command", sorted(MAPPING))
def test_each_option_is_a_parameter_of_the_api_call(command):
    parsers = dict(leaf_commands(build_parser()))
    apis, renamed, output_only = MAPPING[command]
    known = names(*apis())
    missing = sorted(o for o in options(parsers[command]) - output_only if renamed.get(o, o) not in known)
    assert not missing, f"`emolens {command}` options with no API parameter: {missing}"
    stale = sorted((output_only | set(renamed)) - options(parsers[command]))
    assert not stale, f"MAPPING lists options `emolens {command}` no longer has: {stale}"


def test_the_facade_exports_every_job():
    for name in ("Recognizer", "train", "evaluate", "calibrate", "export", "average", "retrain_head",
                 "ensemble_tune", "ensemble_pack", "experiment", "data_stats", "audit", "crop"):
        assert callable(getattr(emolens, name)), name
