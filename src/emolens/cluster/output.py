"""The output folder of ``emolens batch``: a Parquet dataset (``part-<hash>.parquet`` files) and a
manifest, ``_emolens_batch.json``, with the job's description (the ``_`` keeps it out of what
``pandas.read_parquet(DIR)`` reads, as the leading ``.`` keeps out a part being written).

A rerun reads which inputs the parts already cover (from each part's metadata, not its rows) and
skips them; it refuses a folder whose rows were made with other settings (another model, other
options) unless told to overwrite, so that one dataset never mixes two kinds of rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import EmolensError
from ..files import atomic_write_text, is_partial_write
from .schema import META_JOB, META_UNITS, differences

MANIFEST = "_emolens_batch.json"


def part_files(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


def prepare(out: str | Path, description: dict, overwrite: bool = False) -> set[str]:
    """Make ``out`` ready for this job and return the unit keys its parts already cover.

    Leftovers of a killed run (parts being written) are removed; with ``overwrite``, so are the
    parts and manifest of a job with other settings. The manifest is (re)written last."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EmolensError(f"--out {out}: is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.iterdir():
        if is_partial_write(leftover):
            leftover.unlink(missing_ok=True)
    manifest = out / MANIFEST
    old = _read_manifest(manifest) if manifest.exists() else None
    if old is None and part_files(out):
        old = _job_of(part_files(out)[0])
    if old is not None and old.get("settings_hash") != description["settings_hash"]:
        if not overwrite:
            changed = "; ".join(differences(old, description)) or "settings"
            raise EmolensError(f"--out {out} holds rows made with other settings ({changed}); give --overwrite to "
                               "replace them, or another --out")
        for part in part_files(out):
            part.unlink()
    elif overwrite:
        for part in part_files(out):
            part.unlink()
    atomic_write_text(manifest, json.dumps(description, indent=2, sort_keys=True) + "\n")
    return done_units(out, description["settings_hash"])


def done_units(out: Path, settings_hash: str) -> set[str]:
    """The unit keys covered by the parts in ``out`` (each part's ``emolens.units`` metadata)."""
    done: set[str] = set()
    for part in part_files(out):
        job = _job_of(part)
        if job.get("settings_hash") != settings_hash:
            raise EmolensError(f"{part}: made with other settings than the folder's manifest; move it away or "
                               "give --overwrite")
        done.update(json.loads(_metadata(part).get(META_UNITS, b"[]")))
    return done


def _metadata(part: Path) -> dict:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(part).metadata or {}
    except Exception as e:  # noqa: BLE001  (pyarrow raises ArrowInvalid, OSError... on a damaged file)
        raise EmolensError(f"{part}: damaged part file ({e}); delete it and run again") from None


def _job_of(part: Path) -> dict:
    return json.loads(_metadata(part).get(META_JOB, b"{}"))


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EmolensError(f"{path}: damaged manifest ({e}); delete it and run again") from None
