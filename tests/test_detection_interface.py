"""Every detector behind the one interface, on a tiny digits CNN with head dropout: PGD-20
detection, differentiable scores, adaptive loss, save/load and refusal of foreign files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torchattacks

from robustlab.detection import (
    AdaptiveDetectorLoss,
    Detector,
    KernelDensityDetector,
    LIDDetector,
    MahalanobisDetector,
    create_detector,
    detection_metrics,
    load_detector,
    msp_score,
)
from robustlab.errors import CheckpointError, ConfigError
from tests.detection_fixtures import TinyCNN, digits_setup

EPS = 0.15
NAMES = ("mahalanobis", "kd_bu", "lid")
OPTIONS = {"mahalanobis": {"noise_grid": (0.0, 0.002)}, "kd_bu": {"mc_samples": 20}, "lid": {}}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _correct_and_flipped(model, images, labels):
    with torch.no_grad():
        keep = model(images).argmax(1) == labels
    clean, clean_labels = images[keep], labels[keep]
    attack = torchattacks.PGD(model, eps=EPS, alpha=2.5 * EPS / 20, steps=20)
    adv = attack(clean, clean_labels)
    with torch.no_grad():
        return clean, clean_labels, adv[model(adv).argmax(1) != clean_labels]


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    setup = digits_setup(dropout=0.5)
    val = _correct_and_flipped(setup.model, *setup.val)
    test = _correct_and_flipped(setup.model, *setup.test)
    return setup, val, test


@pytest.fixture(scope="module")
def fitted(data):
    setup, val, _ = data
    detectors = {}
    for name in NAMES:
        detector = create_detector(name, **OPTIONS[name]).fit(setup.model, *setup.train)
        detectors[name] = detector.fit_ensemble(val[0], val[2])
    return detectors


@pytest.mark.parametrize("name", NAMES)
def test_every_detector_detects_pgd20(data, fitted, name):
    setup, _, (clean, _, adv) = data
    detector = fitted[name]
    assert isinstance(detector, Detector) and len(adv) > 100
    metrics = detection_metrics(detector.score(clean), detector.score(adv))
    assert metrics["auroc"] > 0.8, metrics  # 0.86 (LID) to 0.96 (Mahalanobis) here
    baseline = detection_metrics(msp_score(setup.model, clean), msp_score(setup.model, adv))
    assert baseline["auroc"] > 0.75  # the MSP baseline beside it (about 0.84)
    summary = json.loads(json.dumps(detector.summary()))
    assert summary["detector"] == name and len(summary["ensemble_weights"]) == detector.num_scores


def test_kd_bandwidth_is_chosen_on_validation_data(fitted):
    detector = fitted["kd_bu"]
    assert set(detector.bandwidth_aurocs) == set(detector.bandwidth_grid)
    best = max(detector.bandwidth_aurocs.values())
    assert detector.bandwidth_aurocs[detector.bandwidth_factor] == best
    assert detector.bandwidth == pytest.approx(detector.bandwidth_factor * detector.scale)


@pytest.mark.parametrize("name", NAMES)
def test_differentiable_score_equals_score_with_gradients(data, fitted, name):
    setup, _, (clean, _, _) = data
    detector, images = fitted[name], clean[:24].clone().requires_grad_(True)
    expected = detector._ensemble_inputs(images.detach()) if name != "mahalanobis" else None
    if name == "mahalanobis":  # the differentiable score is the one without pre-processing
        expected = detector.layer_scores(images.detach(), 0.0)
    expected = expected @ detector.weights + detector.intercept
    score = detector.differentiable_score(images)
    torch.testing.assert_close(score.detach(), expected, rtol=1e-4, atol=1e-4)
    (grad,) = torch.autograd.grad(score.sum(), images)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
    assert all(p.grad is None and p.requires_grad for p in setup.model.parameters())
    assert not setup.model.training


@pytest.mark.parametrize("name", ["kd_bu", "lid"])
def test_adaptive_loss_lowers_each_detectors_score(data, fitted, name):
    setup, _, (clean, labels, _) = data
    detector, images, labels = fitted[name], clean[:60], labels[:60]

    def ascend(weight: float) -> float:
        loss, adv = AdaptiveDetectorLoss(detector, weight=weight), images.clone()
        for _ in range(8):
            adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss(setup.model, adv, images, labels).sum(), adv)
            adv = (images + (adv.detach() + 0.03 * grad.sign() - images).clamp(-EPS, EPS)).clamp(
                0, 1
            )
        return detector.score(adv).mean().item()

    assert ascend(1.0) < ascend(0.0)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trips_scores_exactly(data, fitted, name, tmp_path):
    setup, _, (clean, _, adv) = data
    detector, queries = fitted[name], torch.cat([clean[:40], adv[:40]])
    detector.save(tmp_path / name)
    loaded = load_detector(tmp_path / name, setup.model)
    assert type(loaded) is type(detector)
    assert type(type(detector).load(tmp_path / name, setup.model)) is type(detector)
    assert torch.equal(loaded.score(queries), detector.score(queries))
    assert torch.equal(loaded.layer_scores(queries), detector.layer_scores(queries))
    assert loaded.summary() == json.loads(json.dumps(detector.summary()))


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_foreign_and_tampered_files_are_refused(data, fitted, tmp_path, monkeypatch):
    setup = data[0]
    monkeypatch.chdir(tmp_path)
    fitted["kd_bu"].save(tmp_path / "kd")
    (tmp_path / "kd" / "detector.safetensors").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError, match="not a detector saved by robustlab"):
        load_detector(tmp_path / "kd", setup.model)
    assert not (tmp_path / "PWNED").exists()
    fitted["lid"].save(tmp_path / "lid")
    with pytest.raises(CheckpointError, match="'lid' detector, not 'mahalanobis'"):
        MahalanobisDetector.load(tmp_path / "lid", setup.model)
    assert isinstance(load_detector(tmp_path / "lid", setup.model), LIDDetector)
    meta_path = tmp_path / "lid" / "detector.json"
    meta = json.loads(meta_path.read_text())
    for key, value, load, message in (
        ("k", "20; rm -rf /", LIDDetector.load, "malformed"),
        ("num_layers", 99, LIDDetector.load, "lacks"),
        ("detector", "os.system", LIDDetector.load, "'os.system' detector, not 'lid'"),
        ("detector", "os.system", load_detector, "unknown detector 'os.system'; known: maha"),
        ("detector", ["lid"], load_detector, "unknown detector"),
    ):
        meta_path.write_text(json.dumps({**meta, key: value}))
        with pytest.raises(CheckpointError, match=message):
            load(tmp_path / "lid", setup.model)


def test_kd_bu_load_needs_the_dropout_model(fitted, tmp_path):
    fitted["kd_bu"].save(tmp_path / "kd")
    with pytest.raises(ConfigError, match="dropout"):
        KernelDensityDetector.load(tmp_path / "kd", TinyCNN())
