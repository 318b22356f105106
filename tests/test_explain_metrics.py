"""Clean-vs-adversarial comparison, deletion/insertion faithfulness and the randomisation
sanity check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from robustlab.errors import ConfigError
from robustlab.explain import (
    attribute,
    deletion_insertion,
    randomization_correlation,
    randomized_copy,
    spearman,
    topk_intersection,
)
from tests.attack_fixtures import digits_split, trained_tiny_cnn


def test_map_compared_with_itself_scores_one():
    maps = torch.randn(5, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(topk_intersection(maps, maps, k=8), torch.ones(5))
    assert torch.allclose(spearman(maps, maps), torch.ones(5))
    assert torch.allclose(spearman(maps, -maps), -torch.ones(5))


def test_topk_intersection_counts_shared_pixels():
    first = torch.arange(16.0).view(1, 4, 4)
    second = first.flip(-1).flip(-2)  # the top 4 of one are the bottom 4 of the other
    assert float(topk_intersection(first, second, k=4)) == 0.0
    shifted = first.clone()
    shifted[0, 3, 3] = -1.0  # drop one of the top 4
    assert float(topk_intersection(first, shifted, k=4)) == 0.75
    with pytest.raises(ConfigError, match="k must lie"):
        topk_intersection(first, first, k=17)


def test_spearman_matches_scipy_with_ties_and_is_nan_for_a_constant_map():
    gen = torch.Generator().manual_seed(1)
    first = torch.randint(0, 5, (6, 8, 8), generator=gen).float()  # many ties
    second = first + torch.randint(0, 3, (6, 8, 8), generator=gen).float()
    expected = [
        spearmanr(a.flatten(), b.flatten()).statistic for a, b in zip(first, second, strict=True)
    ]
    assert np.allclose(spearman(first, second).numpy(), expected, atol=1e-6)
    constant = torch.zeros(1, 8, 8)
    assert torch.isnan(spearman(constant, first[:1])).all()


def test_deletion_and_insertion_curve_end_points():
    model = trained_tiny_cnn()
    images = digits_split()[2][:10]
    target = model(images).argmax(1)
    curves = deletion_insertion(model, images, torch.rand(10, 8, 8), target, steps=8)
    with torch.no_grad():
        clean = model(images).softmax(1).gather(1, target[:, None])[:, 0]
        blank = model(torch.zeros_like(images)).softmax(1).gather(1, target[:, None])[:, 0]
    assert curves.deletion.shape == (10, 9)
    assert torch.allclose(curves.deletion[:, 0], clean, atol=1e-6)
    assert torch.allclose(curves.deletion[:, -1], blank, atol=1e-6)
    assert torch.allclose(curves.insertion[:, 0], blank, atol=1e-6)
    assert torch.allclose(curves.insertion[:, -1], clean, atol=1e-6)
    assert ((curves.deletion_auc >= 0) & (curves.deletion_auc <= 1)).all()


def test_saliency_is_more_faithful_than_a_random_ranking():
    model = trained_tiny_cnn()
    images = digits_split()[2][:64]
    target = model(images).argmax(1)
    maps = attribute(model, images, target, method="saliency")
    gen = torch.Generator().manual_seed(0)
    ours = deletion_insertion(model, images, maps, target, generator=gen)
    chance = deletion_insertion(model, images, torch.rand(64, 8, 8, generator=gen), target)
    assert ours.deletion_auc.mean() < chance.deletion_auc.mean() - 0.05
    assert ours.insertion_auc.mean() > chance.insertion_auc.mean()


def test_randomised_model_changes_the_maps_and_leaves_the_original_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clone = randomized_copy(model, seed=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(clone[1].weight, model[1].weight)
    images, target = torch.rand(16, 1, 8, 8), torch.zeros(16, dtype=torch.long)
    rho = randomization_correlation(model, images, target, "saliency", seed=3)
    assert rho.mean() < 0.5
    # a "model" whose maps cannot depend on weights (no parameters) correlates perfectly
    rho_fixed = randomization_correlation(nn.Flatten(), images, target, "saliency", seed=3)
    assert torch.allclose(rho_fixed[torch.isfinite(rho_fixed)], torch.ones(1))
