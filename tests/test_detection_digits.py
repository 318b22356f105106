"""The detector on a tiny CNN trained on digits: FGSM/PGD detection, protocols, adaptive attack."""

from __future__ import annotations

import pytest
import torch
import torchattacks

from robustlab.detection import (
    AdaptiveDetectorLoss,
    DetectionProtocol,
    MahalanobisDetector,
    adaptive_attack,
    detection_metrics,
    evaluate_detection,
)
from tests.detection_fixtures import digits_setup

EPS = 0.15


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: thread start-up costs more than it saves, and cores are shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    return digits_setup()


@pytest.fixture(scope="module")
def detector(setup):
    return MahalanobisDetector().fit(setup.model, *setup.train)


def _correct(model, images, labels):
    with torch.no_grad():
        keep = model(images).argmax(1) == labels
    return images[keep], labels[keep]


def _flipped(model, attack, images, labels):
    adv = attack(images, labels)
    with torch.no_grad():
        return adv[model(adv).argmax(1) != labels]


def _fit_fgsm(setup, detector):
    model = setup.model
    val_x, val_y = _correct(model, *setup.val)
    detector.fit_ensemble(val_x, _flipped(model, torchattacks.FGSM(model, eps=EPS), val_x, val_y))
    return detector


def test_fgsm_examples_are_detected(setup, detector):
    model = setup.model
    _fit_fgsm(setup, detector)
    test_x, test_y = _correct(model, *setup.test)
    adv = _flipped(model, torchattacks.FGSM(model, eps=EPS), test_x, test_y)
    assert len(adv) > 100
    metrics = detection_metrics(detector.score(test_x), detector.score(adv))
    assert metrics["auroc"] >= 0.8, metrics  # about 0.96 on this model
    assert metrics["tnr_at_tpr95"] > 0.3
    assert detector.noise in detector.noise_grid
    assert set(detector.noise_aurocs) == set(detector.noise_grid)


class SpyDetector(MahalanobisDetector):
    """Records every tensor the ensemble is fitted on, and every tensor scored."""

    def __init__(self):
        super().__init__(noise_grid=(0.0, 0.002))
        self.fitted_on: list[tuple[str, torch.Tensor]] = []
        self.scored: list[torch.Tensor] = []

    def fit_ensemble(self, clean, adversarial, noisy=None):
        self.fitted_on += [("clean", clean), ("adversarial", adversarial), ("noisy", noisy)]
        return super().fit_ensemble(clean, adversarial, noisy)

    def score(self, images):
        self.scored.append(images)
        return super().score(images)


def test_evaluate_detection_fits_on_validation_only(setup):
    model = setup.model
    val_x, val_y = setup.val
    # Pixel (0, 0) is 0 in every digit; setting it to 1 tags test data through any attack.
    assert val_x[:, 0, 0, 0].eq(0).all()
    test_x = setup.test[0].clone()
    test_x[:, 0, 0, 0] = 1.0
    spy = SpyDetector().fit(model, *setup.train)
    attacks = {
        ("fgsm", EPS): torchattacks.FGSM(model, eps=EPS),
        ("pgd", EPS): torchattacks.PGD(model, eps=EPS, alpha=0.05, steps=5),
    }
    report = evaluate_detection(
        model,
        spy,
        (val_x, val_y),
        (test_x, setup.test[1]),
        attacks=attacks,
        protocol=DetectionProtocol(fit_on=("fgsm", EPS)),
    )
    results = report.to_results()["detection"]
    assert set(results) == {"fgsm@0.15", "pgd@0.15", "pgd@0.15|unseen(fgsm@0.15)"}
    assert len(spy.fitted_on) == 3 * 3  # two known fits and one for the unseen protocol
    for kind, tensor in spy.fitted_on:
        assert tensor[:, 0, 0, 0].lt(0.5).all(), f"test data reached the {kind} fit"
        with torch.no_grad():
            predictions = model(tensor).argmax(1)
        # The source of each example is its nearest validation image.
        source = torch.cdist(tensor.flatten(1), val_x.flatten(1)).argmin(1)
        if kind == "adversarial":
            assert (predictions != val_y[source]).all()  # positives flip the label
        else:
            assert (predictions == val_y[source]).all()  # negatives keep it
    assert any(t[:, 0, 0, 0].gt(0.5).all() for t in spy.scored)  # the spy does see test data
    test_correct = _correct(model, test_x, setup.test[1])
    n_flipped = len(_flipped(model, attacks[("fgsm", EPS)], *test_correct))
    entry = results["fgsm@0.15"]
    assert entry["n_adversarial"] == n_flipped and entry["n_clean"] == len(test_correct[0])
    assert entry["protocol"] == "known" and "wrongly" in entry["positives"]
    assert results["pgd@0.15|unseen(fgsm@0.15)"]["protocol"] == "unseen"
    for metrics in (entry, entry["baseline_msp"]):
        assert 0.0 <= metrics["auroc"] <= 1.0


def test_adaptive_loss_lowers_detector_score_and_true_probability(setup, detector):
    model = setup.model
    _fit_fgsm(setup, detector)
    images, labels = (t[:100] for t in _correct(model, *setup.test))

    def ascend(weight: float) -> tuple[float, float]:
        loss, adv = AdaptiveDetectorLoss(detector, weight=weight), images.clone()
        for _ in range(10):
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss(model, adv, images, labels).sum(), adv)
            delta = (adv.detach() + 0.02 * grad.sign() - images).clamp(-EPS, EPS)
            adv = (images + delta).clamp(0, 1)
        with torch.no_grad():
            true_prob = model(adv).softmax(1).gather(1, labels[:, None]).mean().item()
        return true_prob, detector.score(adv).mean().item()

    with torch.no_grad():
        clean_prob = model(images).softmax(1).gather(1, labels[:, None]).mean().item()
    clean_score = detector.score(images).mean().item()
    plain_prob, plain_score = ascend(0.0)
    aware_prob, aware_score = ascend(1.0)
    assert plain_prob < 0.8 * clean_prob and plain_score > clean_score
    assert aware_prob < 0.8 * clean_prob and aware_score < clean_score
    assert all(p.grad is None for p in model.parameters())


def test_adaptive_attack_with_native_pgd_evades_better(setup, detector):
    model = setup.model
    _fit_fgsm(setup, detector)
    images, labels = _correct(model, *setup.test)
    clean_scores = detector.score(images)
    plain = torchattacks.PGD(model, eps=EPS, alpha=0.0375, steps=10)
    threshold = detector.score(_flipped(model, plain, images, labels)).quantile(0.05)
    attack = adaptive_attack(model, detector, eps=EPS, alpha=0.0375, steps=10, weight=1.0)
    adv = attack(images, labels)
    assert (adv - images).abs().max() <= EPS + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        fooled = model(adv).argmax(1) != labels
    evaded = (detector.score(adv) < threshold) & fooled
    assert fooled.float().mean() > 0.2
    assert evaded.float().mean() > 0.2  # about 0.05 for the detector-unaware attack
    assert detection_metrics(clean_scores, detector.score(adv[fooled]))["auroc"] < 0.8
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_evaluate_detection_reports_adaptive_next_to_known(setup):
    model = setup.model
    detector = MahalanobisDetector(noise_grid=(0.0,)).fit(model, *setup.train)
    attacks = {
        ("pgd", EPS): torchattacks.PGD(model, eps=EPS, alpha=0.05, steps=5),
        # no eps: no adaptive pairing (CW rather than DeepFool, whose per-class Jacobians
        # take most of a minute here)
        "cw": torchattacks.CW(model, c=1.0, steps=10),
    }
    protocol = DetectionProtocol(adaptive=True, adaptive_weight=1.0, adaptive_steps=8)
    report = evaluate_detection(
        model, detector, setup.val, setup.test, attacks=attacks, protocol=protocol
    )
    assert "auroc" in report["cw"] and "adaptive" not in report["cw"]
    known = report[("pgd", EPS)]
    adaptive = known["adaptive"]
    assert adaptive["protocol"] == "adaptive" and adaptive["eps"] == EPS
    assert 0.0 <= adaptive["robust_accuracy"] <= 1.0 and adaptive["n_adversarial"] > 0
    assert adaptive["auroc"] < known["auroc"]
    assert adaptive["evasion_rate"] > known["evasion_rate"]
