"""The detection stage: fit the configured detectors and evaluate them against the attacks.
Reads the ``detector`` node only; the evaluation's attacks and report come in as values."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import StageInputs
from robustlab.attacks import AttackSpec, build_attack, takes_eps
from robustlab.attacks.catalogue import attack_factory
from robustlab.data import stratified_subset
from robustlab.detection import (
    AttackKey,
    DetectionProtocol,
    DetectionReport,
    Detector,
    create_detector,
    evaluate_detection,
    list_detectors,
)
from robustlab.detection.crafting import AttackFn
from robustlab.evaluation import RobustnessReport

log = logging.getLogger(__name__)


def _attack_names(det: DictConfig) -> list[str]:
    """The detector's attacks (``attacks``, ``unseen``, ``fit_on``), each once, in order."""
    return list(dict.fromkeys([*det.attacks, *det.unseen, *([det.fit_on] if det.fit_on else [])]))


def detection_pairs(
    det: DictConfig, specs: dict[str, AttackSpec], eps_grid: Sequence[float]
) -> list[tuple[str, float]]:
    """The ``(attack, eps)`` pairs whose adversarial images the detection stage reuses from the
    evaluation: each detector attack of ``specs`` (the evaluation's attacks) that takes an eps,
    at each ``detector.eps`` the evaluation covers (``eps_grid``, or the attack's own grid).
    None with ``detector=none``."""
    if det.name == "none":
        return []
    pairs = []
    for name in _attack_names(det):
        spec = specs.get(name)
        if spec is None or not takes_eps(spec.name):
            continue
        grid = {float(e) for e in (spec.eps if spec.eps is not None else eps_grid)}
        pairs += [(name, float(eps)) for eps in det.eps if float(eps) in grid]
    return pairs


def detection_attacks(
    det: DictConfig, specs: dict[str, AttackSpec], model: nn.Module
) -> tuple[dict[AttackKey, AttackFn], dict[str, list[AttackKey]]]:
    """Attacks keyed ``AttackKey(name, eps)`` (eps None for CW...) and the keys of each
    protocol (``known``, ``unseen``, ``fit_on``); ``specs``: the evaluation's attacks."""
    attacks: dict[AttackKey, AttackFn] = {}
    keys_of: dict[str, list[AttackKey]] = {}
    for name in _attack_names(det):
        spec = specs[name]
        if not takes_eps(spec.name):
            keys_of[name] = [AttackKey(name)]
            attacks[AttackKey(name)] = build_attack(spec.name, model, **spec.kwargs)
            continue
        make = attack_factory(spec, model)
        keys_of[name] = [AttackKey(name, float(eps)) for eps in det.eps]
        attacks.update({key: make(key.eps) for key in keys_of[name]})
    protocols = {
        "known": [key for name in det.attacks for key in keys_of[name]],
        "unseen": [key for name in det.unseen for key in keys_of[name]],
        "fit_on": keys_of[det.fit_on][:1] if det.fit_on else [],
    }
    return attacks, protocols


def detector_names(det: DictConfig, model_dropout: bool) -> list[str]:
    """The detectors of ``detector.name`` (``all``: every one the model supports; KD+BU needs
    the model's head dropout)."""
    if det.name != "all":
        return [det.name]
    names = list_detectors()
    return names if model_dropout else [n for n in names if n != "kd_bu"]


def build_detectors(
    det: DictConfig, inputs: StageInputs, model_dropout: bool
) -> dict[str, Detector]:
    """Every configured detector, fitted on the clean training split."""
    options = {"mahalanobis": {"noise_grid": tuple(det.noise_grid)}}
    detectors = {}
    for name in detector_names(det, model_dropout):
        detector = create_detector(name, batch_size=inputs.batch_size, **options.get(name, {}))
        detectors[name] = detector.fit(inputs.model, *inputs.bundle.train)
    return detectors


def reused_adversarial(
    evaluation: RobustnessReport | None, attacks: dict[AttackKey, AttackFn]
) -> dict[AttackKey, torch.Tensor]:
    """The evaluation's kept adversarial images of the detection's test attacks, by key."""
    if evaluation is None:
        return {}
    kept = {AttackKey(name, eps): adv for (name, eps), adv in evaluation.adversarial.items()}
    return {key: kept[key] for key in attacks if key in kept}


def detect_stage(
    det: DictConfig,
    inputs: StageInputs,
    specs: dict[str, AttackSpec],
    model_dropout: bool,
    evaluation: RobustnessReport | None = None,
) -> DetectionReport:
    """Known- and unseen-attack protocols (plus the adaptive attack) on validation/test splits.

    Every detector is fitted on the clean training split, its ensemble on the validation split;
    the test split is only scored. With several detectors (``detector=all``) all of them see
    the same adversarial examples. ``specs``: the evaluation's attacks, by key; ``evaluation``:
    the job's robustness report; the test split then reuses its adversarial images
    (``report.adversarial``) on exactly its test examples (``inputs.test``, same rows and
    order, instead of ``detector.max_examples``), so that each (attack, eps) has one robust
    accuracy in the job.
    """
    detectors = build_detectors(det, inputs, model_dropout)
    attacks, keys = detection_attacks(det, specs, inputs.model)
    protocol = DetectionProtocol(
        known=keys["known"],
        unseen=keys["unseen"],
        fit_on=keys["fit_on"][0] if keys["fit_on"] and keys["unseen"] else None,
        adaptive=det.adaptive,
        adaptive_weight=det.adaptive_weight,
        seed=inputs.seed,
        batch_size=inputs.batch_size,
    )
    bundle = inputs.bundle
    val = stratified_subset(*bundle.val, det.max_examples, seed=inputs.seed)
    reused = reused_adversarial(evaluation, attacks)
    if reused:
        test = inputs.test
        log.info("detection reuses the evaluation's adversarial examples: %s", list(reused))
    else:
        test = stratified_subset(*bundle.test, det.max_examples, seed=inputs.seed)
    return evaluate_detection(
        inputs.model,
        detectors,
        val,
        test,
        attacks=attacks,
        protocol=protocol,
        test_adversarial=reused,
    )
