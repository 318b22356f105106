"""The detection stage: fit the configured detectors and evaluate them against the attacks."""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig
from torch import nn

from robustlab.app.builders import DataBundle, attack_spec
from robustlab.app.evaluation_stage import evaluation_subset
from robustlab.attacks import build_attack, takes_eps
from robustlab.attacks.catalogue import attack_factory
from robustlab.data import stratified_subset
from robustlab.detection import (
    AttackKey,
    DetectionProtocol,
    DetectionReport,
    Detector,
    build_detector,
    evaluate_detection,
    list_detectors,
)
from robustlab.detection.crafting import AttackFn
from robustlab.evaluation import RobustnessReport

log = logging.getLogger(__name__)


def detection_attacks(
    cfg: DictConfig, model: nn.Module
) -> tuple[dict[AttackKey, AttackFn], dict[str, list[AttackKey]]]:
    """Attacks keyed ``AttackKey(name, eps)`` (eps None for CW...) and the keys of each
    protocol (``known``, ``unseen``, ``fit_on``)."""
    det = cfg.detector
    names = list(dict.fromkeys([*det.attacks, *det.unseen, *([det.fit_on] if det.fit_on else [])]))
    attacks: dict[AttackKey, AttackFn] = {}
    keys_of: dict[str, list[AttackKey]] = {}
    for name in names:
        spec = attack_spec(cfg.eval.attacks[name])
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


def detector_names(cfg: DictConfig) -> list[str]:
    """The detectors of ``detector.name`` (``all``: every one the model supports; KD+BU needs
    the model's head dropout, ``model.dropout``)."""
    if cfg.detector.name != "all":
        return [cfg.detector.name]
    names = list_detectors()
    return names if cfg.model.get("dropout") else [n for n in names if n != "kd_bu"]


def build_detectors(cfg: DictConfig, model: nn.Module, bundle: DataBundle) -> dict[str, Detector]:
    """Every configured detector, fitted on the clean training split."""
    options = {"mahalanobis": {"noise_grid": tuple(cfg.detector.noise_grid)}}
    detectors = {}
    for name in detector_names(cfg):
        detector = build_detector(name, batch_size=cfg.eval.batch_size, **options.get(name, {}))
        detectors[name] = detector.fit(model, *bundle.train)
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
    cfg: DictConfig,
    model: nn.Module,
    bundle: DataBundle,
    evaluation: RobustnessReport | None = None,
) -> DetectionReport:
    """Known- and unseen-attack protocols (plus the adaptive attack) on validation/test splits.

    Every detector is fitted on the clean training split, its ensemble on the validation split;
    the test split is only scored. With several detectors (``detector=all``) all of them see
    the same adversarial examples. ``evaluation``: the job's robustness report; the test split
    then reuses its adversarial images (``report.adversarial``) on exactly its test examples
    (``eval.max_examples`` of them, same rows and order, instead of ``detector.max_examples``),
    so that each (attack, eps) has one robust accuracy in the job.
    """
    det = cfg.detector
    detectors = build_detectors(cfg, model, bundle)
    attacks, keys = detection_attacks(cfg, model)
    protocol = DetectionProtocol(
        known=keys["known"],
        unseen=keys["unseen"],
        fit_on=keys["fit_on"][0] if keys["fit_on"] and keys["unseen"] else None,
        adaptive=det.adaptive,
        adaptive_weight=det.adaptive_weight,
        seed=cfg.seed,
        batch_size=cfg.eval.batch_size,
    )
    val = stratified_subset(*bundle.val, det.max_examples, seed=cfg.seed)
    reused = reused_adversarial(evaluation, attacks)
    if reused:
        test = evaluation_subset(cfg, bundle)
        log.info("detection reuses the evaluation's adversarial examples: %s", list(reused))
    else:
        test = stratified_subset(*bundle.test, det.max_examples, seed=cfg.seed)
    return evaluate_detection(model, detectors, val, test, attacks, protocol, reused)
