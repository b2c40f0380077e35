"""YAML files that must hold a mapping (a train config, an experiment, a class map): errors name the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import EmolensError


def read_yaml_mapping(path: str | Path, kind: str) -> dict:
    """A YAML file that must hold a mapping (a config, an experiment); errors name the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise EmolensError(f"{path}: cannot read {kind} ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise EmolensError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(raw, dict):
        raise EmolensError(f"{path}: a {kind} must be a mapping of keys to values")
    return raw
