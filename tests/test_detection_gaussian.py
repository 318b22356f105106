"""Mahalanobis statistics and scores against closed forms on synthetic Gaussian clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from robustlab.detection import MahalanobisDetector
from robustlab.errors import ConfigError, DataError, InputError, RobustlabError
from tests.detection_fixtures import FeaturesAsInput, TinyCNN, gaussian_clusters


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: thread start-up costs more than it saves, and cores are shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _closed_form(x: np.ndarray, y: np.ndarray, queries: np.ndarray, k: int):
    means = np.stack([x[y == c].mean(0) for c in range(k)])
    centered = x - means[y]
    cov = centered.T @ centered / len(x)
    precision = np.linalg.pinv(cov)
    diffs = queries[:, None, :] - means[None]
    dist = np.einsum("ncd,de,nce->nc", diffs, precision, diffs)
    return means, precision, (-dist).max(1)


def test_tied_covariance_and_scores_match_closed_form():
    x, y = gaussian_clusters(num_classes=3, dim=4, per_class=80)
    queries, _ = gaussian_clusters(num_classes=3, dim=4, per_class=10, seed=1)
    detector = MahalanobisDetector(shrinkage=0.0).fit(FeaturesAsInput(), x, y)
    xd, qd = x.double().numpy(), queries.double().numpy()
    means, precision, expected = _closed_form(xd, y.numpy(), qd, 3)
    gaussian = detector.gaussians[0]
    np.testing.assert_allclose(gaussian.means.numpy(), means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gaussian.precision.numpy(), precision, rtol=1e-3)
    scores = detector.layer_scores(queries)
    assert scores.shape == (len(queries), 1)
    np.testing.assert_allclose(scores[:, 0].numpy(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shrinkage", ["auto", 0.3])
def test_shrinkage_pulls_covariance_toward_scaled_identity(shrinkage):
    x, y = gaussian_clusters(num_classes=3, dim=6, per_class=15)
    detector = MahalanobisDetector(shrinkage=shrinkage).fit(FeaturesAsInput(), x, y)
    xd, yd = x.double().numpy(), y.numpy()
    centered = xd - np.stack([xd[yd == c].mean(0) for c in range(3)])[yd]
    if shrinkage == "auto":
        cov = LedoitWolf(assume_centered=True).fit(centered).covariance_
    else:
        emp = centered.T @ centered / len(xd)
        cov = 0.7 * emp + 0.3 * np.trace(emp) / 6 * np.eye(6)
    precision = detector.gaussians[0].precision.numpy()
    np.testing.assert_allclose(precision, np.linalg.inv(cov), rtol=1e-3)
    assert 0.0 < detector.gaussians[0].shrinkage <= 1.0


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_scores_invariant_to_batch_size_and_order(noise):
    x, y = gaussian_clusters(num_classes=4, dim=5, per_class=30)
    small = MahalanobisDetector(batch_size=7).fit(FeaturesAsInput(), x, y)
    large = MahalanobisDetector(batch_size=500).fit(FeaturesAsInput(), x, y)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    reference = large.layer_scores(x, noise)
    # float32 sums in another order: equal to a few ulps of scores around 1-10, no more
    tolerance = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(small.layer_scores(x, noise), reference, **tolerance)
    torch.testing.assert_close(large.layer_scores(x[perm], noise), reference[perm], **tolerance)


def test_preprocessing_moves_clean_inputs_toward_closest_mean():
    x, y = gaussian_clusters(num_classes=3, dim=4, per_class=60)
    detector = MahalanobisDetector(shrinkage=0.0).fit(FeaturesAsInput(), x, y)
    before = detector.layer_scores(x, 0.0)[:, 0]
    # Small enough for the first-order gain of a sign step to dominate the curvature.
    after = detector.layer_scores(x, 0.0005)[:, 0]
    assert (after > before).all()
    # Larger steps may overshoot a few points, but the average confidence still rises.
    assert detector.layer_scores(x, 0.005)[:, 0].mean() > before.mean()


def test_rank_deficient_features_give_finite_scores():
    # 60 dimensions, 12 examples: the plain covariance is singular.
    x, y = gaussian_clusters(num_classes=3, dim=60, per_class=4)
    for shrinkage in (0.0, "auto"):
        detector = MahalanobisDetector(shrinkage=shrinkage).fit(FeaturesAsInput(), x, y)
        scores = detector.layer_scores(torch.cat([x, torch.rand(5, 60)]), noise=0.002)
        assert torch.isfinite(scores).all()
        adversarial = (x[:6] + 0.2).clamp(0, 1)
        detector.fit_ensemble(x, adversarial)
        assert torch.isfinite(detector.score(x)).all()


def test_degenerate_data_raise_clear_errors():
    x, y = gaussian_clusters(num_classes=3, dim=4, per_class=10)
    with pytest.raises(DataError, match="class"):
        MahalanobisDetector().fit(FeaturesAsInput(), x[y != 1], y[y != 1])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN or inf values in row 0"):
        MahalanobisDetector().fit(FeaturesAsInput(), bad, y)
    with pytest.raises(DataError, match="zero variance"):
        MahalanobisDetector().fit(FeaturesAsInput(), torch.full_like(x, 0.5), y)
    with pytest.raises(ConfigError):
        MahalanobisDetector(shrinkage=1.5)
    with pytest.raises(RobustlabError, match="not fitted"):
        MahalanobisDetector().score(x)
    with pytest.raises(DataError, match="at least"):
        MahalanobisDetector().fit(FeaturesAsInput(), x, y).fit_ensemble(x, x[:1])


def test_model_mode_and_gradients_left_untouched():
    torch.manual_seed(0)
    model = TinyCNN().train()
    images, labels = torch.rand(40, 1, 8, 8), torch.arange(40) % 4
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    detector = MahalanobisDetector(batch_size=16).fit(model, images, labels)
    scores = detector.layer_scores(images, noise=0.01)
    assert scores.shape == (40, 3) and torch.isfinite(scores).all()
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, buffers[key])


def test_score_before_the_ensemble_is_the_negated_closed_form_confidence():
    x, y = gaussian_clusters(num_classes=3, dim=4, per_class=80)
    detector = MahalanobisDetector(shrinkage=0.0).fit(FeaturesAsInput(), x, y)
    inliers, _ = gaussian_clusters(num_classes=3, dim=4, per_class=10, seed=1)
    outliers = inliers + 25.0  # far from every class mean
    _, _, expected = _closed_form(x.double().numpy(), y.numpy(), inliers.double().numpy(), 3)
    np.testing.assert_allclose(detector.score(inliers).numpy(), -expected, rtol=1e-4, atol=1e-3)
    assert detector.score(outliers).min() > detector.score(inliers).max()
