"""Detection metrics on hand-computed cases, and the max-softmax baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustlab.detection import detection_metrics, msp_score
from robustlab.errors import DataError


def test_perfect_separation():
    result = detection_metrics([0.0, 0.1, 0.2], torch.tensor([0.5, 0.9]))
    assert result == {"auroc": 1.0, "tnr_at_tpr95": 1.0, "detection_accuracy": 1.0, "aupr": 1.0}


def test_reversed_scores_are_worst_case():
    result = detection_metrics([0.5, 0.9], [0.0, 0.1, 0.2])
    assert result["auroc"] == 0.0 and result["tnr_at_tpr95"] == 0.0
    # A constant detector (threshold above everything) already reaches 0.5.
    assert result["detection_accuracy"] == 0.5


def test_hand_computed_case():
    # Pairs (pos > neg): 2.5 beats 0, 1, 2 and 4 beats all four -> 7/8.
    # Catching both positives needs threshold 2.5, letting 1 of 4 negatives through.
    # Precision is 1 at recall 1/2 and 2/3 at recall 1 -> AP = 0.5 + 0.5 * 2/3.
    result = detection_metrics(np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.5, 4.0]))
    assert result["auroc"] == pytest.approx(7 / 8)
    assert result["tnr_at_tpr95"] == pytest.approx(0.75)
    assert result["detection_accuracy"] == pytest.approx(0.5 * (1.0 + 0.75))
    assert result["aupr"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_identical_distributions_are_chance():
    rng = np.random.default_rng(0)
    result = detection_metrics(rng.normal(size=4000), rng.normal(size=4000))
    assert result["auroc"] == pytest.approx(0.5, abs=0.03)
    assert result["tnr_at_tpr95"] == pytest.approx(0.05, abs=0.02)
    assert result["detection_accuracy"] < 0.55


def test_bad_scores_raise():
    with pytest.raises(DataError, match="empty"):
        detection_metrics([], [1.0])
    with pytest.raises(DataError, match="NaN"):
        detection_metrics([0.0, float("nan")], [1.0])


def test_msp_score_ranks_like_one_minus_max_softmax():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5)).train()
    images = torch.rand(64, 1, 4, 4) * torch.linspace(0.1, 30, 64)[:, None, None, None]
    scores = msp_score(model, images, batch_size=10)
    probabilities = model(images).double().softmax(1).amax(1).detach()
    assert model.training and all(p.grad is None for p in model.parameters())
    np.testing.assert_allclose(scores.numpy(), -np.log(probabilities.numpy()), rtol=1e-4, atol=1e-6)
    # Logit gaps of 20-40: 1 - MSP rounds to 0 in float32, but the scores must stay ranked.
    confident = torch.full((3, 5), -50.0)
    confident[:, 0] = torch.tensor([-30.0, -20.0, -10.0])
    head = nn.Linear(5, 5)
    with torch.no_grad():
        head.weight.copy_(torch.eye(5))
        head.bias.zero_()
    tiny = msp_score(head, confident)
    assert (tiny > 0).all() and tiny[0] > tiny[1] > tiny[2]
