"""Saving and loading a fitted detector (identical scores, refusal of mismatches), detectors by
name, and an import graph in which the interface knows neither its subclasses nor its files."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import robustlab.detection
from robustlab.detection import (
    LIDDetector,
    MahalanobisDetector,
    create_detector,
    list_detectors,
    load_detector,
    register_detector,
    registry,
)
from robustlab.errors import CheckpointError, ConfigError
from robustlab.registry import Registry
from tests.detection_fixtures import FeaturesAsInput, gaussian_clusters


class FirstTwoFeatures(nn.Module):
    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x[:, :2]]


@pytest.fixture
def fitted() -> tuple[MahalanobisDetector, torch.Tensor]:
    x, y = gaussian_clusters(num_classes=3, dim=5, per_class=40)
    detector = MahalanobisDetector(noise_grid=(0.0, 0.01), batch_size=32).fit(
        FeaturesAsInput(), x, y
    )
    queries, _ = gaussian_clusters(num_classes=3, dim=5, per_class=20, seed=2)
    detector.fit_ensemble(queries[:30], (queries[30:] + 0.15).clamp(0, 1))
    return detector, queries


def test_round_trip_gives_identical_scores(fitted, tmp_path):
    detector, queries = fitted
    detector.save(tmp_path / "det")
    loaded = MahalanobisDetector.load(tmp_path / "det", FeaturesAsInput())
    assert torch.equal(loaded.score(queries), detector.score(queries))
    assert torch.equal(loaded.layer_scores(queries, 0.01), detector.layer_scores(queries, 0.01))
    assert loaded.noise == detector.noise and loaded.noise_grid == detector.noise_grid
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert meta["num_layers"] == 1 and meta["ensemble"] is True
    assert not list((tmp_path / "det").glob("*.tmp"))


def test_load_refuses_mismatched_or_mixed_files(fitted, tmp_path):
    detector, _ = fitted
    with pytest.raises(CheckpointError, match="no saved detector"):
        MahalanobisDetector.load(tmp_path / "missing", FeaturesAsInput())
    detector.save(tmp_path / "a")
    with pytest.raises(CheckpointError, match="widths"):
        MahalanobisDetector.load(tmp_path / "a", FirstTwoFeatures())
    detector.save(tmp_path / "b")
    (tmp_path / "a" / "detector.json").write_bytes((tmp_path / "b" / "detector.json").read_bytes())
    with pytest.raises(CheckpointError, match="different saves"):
        MahalanobisDetector.load(tmp_path / "a", FeaturesAsInput())


DETECTION = Path(robustlab.detection.__file__).parent
CONCRETE = {"mahalanobis", "kernel_density", "lid"}


def _detection_imports(module: str) -> set[str]:
    """The robustlab.detection modules ``module`` imports, at any depth of its body."""
    found = set()
    for node in ast.walk(ast.parse((DETECTION / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "robustlab.detection"
        ):
            parts = node.module.split(".")[2:]
            found |= {parts[0]} if parts else {alias.name for alias in node.names}
    return found


def test_the_interface_knows_neither_its_subclasses_nor_its_storage():
    assert not _detection_imports("base") & (CONCRETE | {"storage", "registry"})
    assert not _detection_imports("storage") & (CONCRETE | {"registry"})
    importers = {p.stem for p in DETECTION.glob("*.py") if _detection_imports(p.stem) & CONCRETE}
    assert importers == {"registry", "__init__"}


@pytest.fixture
def own_registry(monkeypatch):
    """A copy of the detector registry, so that a test's registrations do not outlive it."""
    copy = Registry("detector")
    for name in list_detectors():
        copy.register(name)(registry.DETECTORS.get(name))
    monkeypatch.setattr(registry, "DETECTORS", copy)
    return copy


def test_a_registered_detector_is_created_saved_and_loaded_by_name(fitted, tmp_path, own_registry):
    assert list_detectors() == ["mahalanobis", "kd_bu", "lid"]

    class FixedShrinkage(MahalanobisDetector):
        name = ""

    assert register_detector("fixed_shrinkage")(FixedShrinkage).name == "fixed_shrinkage"
    with pytest.raises(ValueError, match="register it as 'mahalanobis'"):
        register_detector("maha")(MahalanobisDetector)
    x, y = gaussian_clusters(num_classes=3, dim=5, per_class=40)
    detector = create_detector("Fixed_Shrinkage", shrinkage=0.1, noise_grid=(0.0,))
    detector.fit(FeaturesAsInput(), x, y).fit_ensemble(x[:30], (x[30:60] + 0.2).clamp(0, 1))
    detector.save(tmp_path / "own")
    loaded = load_detector(tmp_path / "own", FeaturesAsInput())
    assert type(loaded) is FixedShrinkage and torch.equal(loaded.score(x), detector.score(x))
    with pytest.raises(CheckpointError, match="'fixed_shrinkage' detector, not 'mahalanobis'"):
        MahalanobisDetector.load(tmp_path / "own", FeaturesAsInput())
    fitted[0].save(tmp_path / "maha")
    assert type(load_detector(tmp_path / "maha", FeaturesAsInput())) is MahalanobisDetector


def test_create_detector_names_the_valid_names_and_options():
    with pytest.raises(ConfigError, match=r"did you mean lid\?"):
        create_detector("lidd")
    with pytest.raises(ConfigError) as info:
        create_detector("lid", kk=3)
    message = str(info.value)
    assert "\n" not in message and "kk" in message and "valid options: k, reference_size" in message
    assert isinstance(create_detector("LID", k=5), LIDDetector)
