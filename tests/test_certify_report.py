"""certify_model's results fragment, the figure, and the gaussian_noise training objective."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from robustlab.certify import certify_model, plot_certified_vs_empirical
from robustlab.fileio import json_safe
from robustlab.training.objectives import GaussianNoise
from tests.certify_fixtures import digits_test, one_thread, trained_small_cnn  # noqa: F401


def test_certify_model_results_fragment(tmp_path):
    model = trained_small_cnn()
    images, labels = digits_test(24)
    report = certify_model(
        model, images, labels, sigma=0.25, n0=20, n=200, alpha=0.001, min_norm_steps=20
    )
    results = json.loads(json.dumps(json_safe(report.to_results()), allow_nan=False))
    smoothing = results["certified_accuracy"]["smoothing"]
    assert smoothing["sigma"] == 0.25 and smoothing["n"] == 200
    assert set(smoothing["radii"]) == {"0.25", "0.5", "1.0"}
    assert smoothing["abstain_rate"] == float((report.smoothing.classes == -1).double().mean())
    accuracies = [smoothing["radii"][k] for k in ("0.25", "0.5", "1.0")]
    assert accuracies == sorted(accuracies, reverse=True)
    assert results["lipschitz"]["bound"] > 1 and results["lipschitz"]["median_margin_radius"] >= 0
    assert set(results["min_norm"]) == {"L2", "Linf"} and results["min_norm"]["L2"] > 0
    assert set(results["timing_s"]) >= {"certify_smoothing", "certify_lipschitz"}
    assert results["warnings"] == report.warnings
    series = {
        "small_cnn / none": {
            "certified (smoothing)": report.smoothing_curve(),
            "certified (Lipschitz margin)": report.lipschitz_curve(),
            "empirical (FMN L2, base model)": report.min_norm_curve("L2"),
        }
    }
    path = plot_certified_vs_empirical(series, tmp_path / "figs" / "certified.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["certified.png"]  # no temp file left


def test_gaussian_noise_objective():
    model = trained_small_cnn()
    images, labels = digits_test(32)
    clean = GaussianNoise(sigma=0.0)(model, images, labels)
    assert torch.allclose(clean.loss, F.cross_entropy(model(images), labels))
    torch.manual_seed(3)
    noisy = GaussianNoise(sigma=0.5)(model, images, labels)
    torch.manual_seed(3)
    expected = F.cross_entropy(model(images + 0.5 * torch.randn_like(images)), labels)
    assert torch.allclose(noisy.loss, expected) and noisy.loss > clean.loss
    assert noisy.grad_evals == 32
    assert GaussianNoise(0.25).describe() == {"name": "gaussian_noise", "sigma": 0.25}
