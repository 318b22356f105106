"""Saving and loading a fitted detector: identical scores, refusal of mismatches."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from robustlab.detection import MahalanobisDetector
from robustlab.errors import CheckpointError
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
