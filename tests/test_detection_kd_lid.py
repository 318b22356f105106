"""KD+BU and LID building blocks against independent numpy/scikit-learn implementations,
and the head-dropout option of the models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.neighbors import KernelDensity
from torch import nn

from robustlab.detection import KernelDensityDetector, LIDDetector
from robustlab.detection.kernel import log_kernel_density
from robustlab.detection.lid import knn_distances, lid_mle
from robustlab.detection.uncertainty import mc_probabilities, predictive_uncertainty
from robustlab.errors import ConfigError, DataError
from robustlab.models import create_model, model_param_count
from tests.detection_fixtures import FeaturesAsInput, gaussian_clusters


def _numpy_log_kde(queries: np.ndarray, points: np.ndarray, h: float) -> np.ndarray:
    """log(1/M sum_j N(q; p_j, h^2 I)), written out directly."""
    sq = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    dim = points.shape[1]
    return (
        logsumexp(-sq / (2 * h * h), axis=1)
        - np.log(len(points))
        - dim / 2 * np.log(2 * np.pi * h * h)
    )


@pytest.mark.parametrize("bandwidth", [0.05, 0.3, 2.0])
def test_kernel_density_matches_sum_of_gaussians(bandwidth):
    rng = np.random.default_rng(0)
    points, queries = rng.normal(size=(53, 4)), rng.normal(size=(9, 4))
    got = log_kernel_density(
        torch.from_numpy(queries), torch.from_numpy(points), [bandwidth, 1.0], chunk_size=7
    )
    np.testing.assert_allclose(got[:, 0].numpy(), _numpy_log_kde(queries, points, bandwidth))
    reference = KernelDensity(bandwidth=bandwidth).fit(points).score_samples(queries)
    np.testing.assert_allclose(got[:, 0].numpy(), reference, rtol=1e-6)
    np.testing.assert_allclose(got[:, 1].numpy(), _numpy_log_kde(queries, points, 1.0))


def test_kernel_density_small_bandwidth_does_not_underflow():
    points = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    query = torch.tensor([[5.0, 0.0]], dtype=torch.float64)
    got = log_kernel_density(query, points, [0.01], chunk_size=1)
    # exp(-25 / 2e-4) is 0 in float64; the log-sum-exp keeps the exact value
    expected = -25.0 / (2e-4) - np.log(2 * np.pi * 1e-4)
    assert torch.isfinite(got).all() and got.item() == pytest.approx(expected, rel=1e-12)


def test_lid_mle_matches_numpy_formula():
    rng = np.random.default_rng(1)
    dist = np.sort(rng.uniform(0.1, 3.0, size=(6, 20)), axis=1)
    expected = -1.0 / np.mean(np.log(dist / dist[:, -1:]), axis=1)
    np.testing.assert_allclose(lid_mle(torch.from_numpy(dist)).numpy(), expected, rtol=1e-12)


def test_knn_distances_sorted_and_skip_own_copy():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(30, 5))
    queries = np.vstack([reference[:3], rng.normal(size=(4, 5))])
    got = knn_distances(torch.from_numpy(queries), torch.from_numpy(reference), k=6).numpy()
    full = np.sqrt(((queries[:, None] - reference[None]) ** 2).sum(-1))
    expected = np.sort(full, axis=1)
    expected = np.vstack([expected[:3, 1:7], expected[3:, :6]])  # copies skip themselves
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("dim", [2, 5])
def test_lid_estimates_the_dimension_of_a_linear_subspace(dim):
    gen = torch.Generator().manual_seed(dim)
    basis = torch.linalg.qr(torch.randn(24, dim, generator=gen))[0]  # orthonormal, (24, dim)
    points = torch.randn(1200, dim, generator=gen) @ basis.T
    detector = LIDDetector(k=20, reference_size=1000).fit(FeaturesAsInput(), points[:1000])
    lids = detector.layer_scores(points[1000:])
    assert lids.shape == (200, 1)
    assert lids.median().item() == pytest.approx(dim, rel=0.2)


def test_uncertainty_is_zero_without_randomness_and_matches_the_paper_formula():
    probs = torch.rand(1, 5, 4).softmax(2).repeat(8, 1, 1)  # T identical samples
    assert predictive_uncertainty(probs).abs().max() < 1e-15
    samples = torch.rand(8, 5, 4, dtype=torch.float64).softmax(2).numpy()
    mean = samples.mean(0)
    paper = (samples**2).sum(2).mean(0) - (mean**2).sum(1)  # Feinman et al., eq. 4
    np.testing.assert_allclose(predictive_uncertainty(torch.from_numpy(samples)), paper)


def test_uncertainty_is_positive_with_dropout_and_refused_without():
    torch.manual_seed(0)
    images = torch.rand(6, 1, 8, 8)
    with_dropout = create_model("small_cnn", 10, 1, widths=(4, 8), dropout=0.5).eval()
    last = with_dropout.forward_features(images)[-1]
    probs = mc_probabilities(with_dropout, images, last, samples=10)
    assert (predictive_uncertainty(probs) > 1e-8).all()
    assert not with_dropout.head.dropout.training  # the sampling switched it back off
    plain = create_model("small_cnn", 10, 1, widths=(4, 8)).eval()
    with pytest.raises(ConfigError, match="dropout"):
        mc_probabilities(plain, images, plain.forward_features(images)[-1], samples=10)
    with pytest.raises(ConfigError, match="dropout"):
        KernelDensityDetector().fit(plain, images, torch.arange(6) % 2)


def test_head_dropout_off_by_default_changes_nothing():
    torch.manual_seed(3)
    default = create_model("resnet20", 10, 1)
    after_default = torch.rand(1)
    torch.manual_seed(3)
    explicit = create_model("resnet20", 10, 1, dropout=0.0)
    assert torch.equal(torch.rand(1), after_default)  # no extra random draws
    assert model_param_count(explicit) == model_param_count(default) == 272_186
    state, other = default.state_dict(), explicit.state_dict()
    assert list(state) == list(other) and all(torch.equal(state[k], other[k]) for k in state)
    x = torch.rand(4, 1, 8, 8)
    torch.manual_seed(0)
    first = default.train()(x)
    assert torch.equal(first, explicit.train()(x))
    with pytest.raises(ConfigError, match="dropout"):
        create_model("resnet20", 10, 1, dropout=1.0)


def test_head_dropout_is_random_in_training_and_off_in_eval():
    model = create_model("se_resnet20", 10, 1, dropout=0.5)
    assert isinstance(model.head.dropout, nn.Dropout) and model.head.dropout.p == 0.5
    x = torch.rand(4, 1, 8, 8)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_lid_needs_a_reference_larger_than_k_and_enough_images():
    x, _ = gaussian_clusters(num_classes=3, dim=4, per_class=10)
    with pytest.raises(ConfigError, match="reference_size"):
        LIDDetector(k=20, reference_size=20)
    with pytest.raises(DataError, match="got 30"):
        LIDDetector(k=5, reference_size=40).fit(FeaturesAsInput(), x)
