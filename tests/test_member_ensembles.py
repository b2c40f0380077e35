"""The ensembles of emolens members (issue 24): members/fer2013-ensemble.ensemble.yaml and
members/ferplus-ensemble.ensemble.yaml, each a soft vote of at least four networks trained by
emolens, diverse by seed, label set or architecture, seed 002's ResNet-SE in at least one of them,
each member with its recipe, weights and card; weights chosen by the out-of-sample rule; run by
path like any model (and bundled by name: tests/test_int8.py, tests/test_light_install.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import emolens
from emolens.classes import FER2013_CLASSES, FERPLUS_CLASSES
from emolens.models.ensemble import EnsembleSpec, resolve_member
from emolens.models.weights import read_spec
from emolens.weights import HERE

REPO = Path(__file__).resolve().parents[1]
MEMBERS = REPO / "members"
PHOTO = str(HERE.parent / "assets" / "astronaut.jpg")
ENSEMBLES = {"fer2013-ensemble": FER2013_CLASSES, "ferplus-ensemble": FERPLUS_CLASSES}


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_each_spec_has_four_diverse_members_with_recipes_and_cards(name):
    spec = EnsembleSpec.load(MEMBERS / f"{name}.ensemble.yaml")
    assert spec.name == name and len(spec.members) >= 4
    archs, recipes, hashes = set(), set(), set()
    for member in spec.members:
        weights = resolve_member(member.model, MEMBERS)
        mspec = read_spec(weights)
        assert list(mspec.classes) == list(ENSEMBLES[name])
        archs.add(mspec.arch)
        hashes.add(mspec.sha256)
        recipes.add(weights.stem)
        assert weights.with_suffix(".md").is_file()                    # its model card
        if weights.parent == MEMBERS:                                   # not a bundled model: its recipe
            assert (REPO / "configs" / "members" / f"{weights.stem}.yaml").is_file()
    assert len(hashes) == len(recipes) == len(spec.members)                 # no member twice
    assert "vgg_fer" in archs
    # the weights are the ones the out-of-sample rule stores: tuned when they ship, else equal
    tuned = spec.tuned
    assert tuned["split"] == "PublicTest" and "accuracy_out_of_sample" in tuned
    given = [m.weight for m in spec.members]
    assert given == (tuned["weights"] if tuned["ships"] else [1 / len(given)] * len(given))


def test_seed_002s_resnet_se_votes_in_at_least_one_ensemble():
    voting = set()
    for name in ENSEMBLES:
        spec = EnsembleSpec.load(MEMBERS / f"{name}.ensemble.yaml")
        voting |= {read_spec(resolve_member(m.model, MEMBERS)).arch for m in spec.members if m.weight >= 0.05}
    assert "se_resnet" in voting


def test_an_ensemble_spec_runs_by_path_in_the_python_api():
    rec = emolens.Recognizer(model=str(MEMBERS / "ferplus-ensemble.ensemble.yaml"), threads=1)
    (face,) = rec.predict(PHOTO).faces
    assert face.label == "happy" and face.confidence > 0.5
    assert list(face.probabilities) == list(FERPLUS_CLASSES)
    assert abs(sum(face.probabilities.values()) - 1) < 1e-4
