"""The evaluation stage: robust accuracy under every configured attack over the eps grid, and
(``eval.l0.budgets``) under the sparse attacks over a budget of changed pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from robustlab.app.builders import DataBundle, attack_spec, attack_specs
from robustlab.attacks import AttackSpec, takes_eps
from robustlab.data import stratified_subset
from robustlab.errors import ConfigError
from robustlab.evaluation import RobustnessReport, evaluate_robustness
from robustlab.evaluation.l0 import L0Report, l0_robustness

# the explanation stage's attack: PGD's iterate is an attacked input for every example, a
# survivor of the worst case may come back from Square as its clean image
EXPLAINED_ATTACK = "pgd"


def evaluation_subset(cfg: DictConfig, bundle: DataBundle) -> tuple[torch.Tensor, torch.Tensor]:
    """The test examples the evaluation attacks (``eval.max_examples`` of them, stratified,
    seeded): the rows of every tensor in ``report.adversarial``, in this order."""
    return stratified_subset(*bundle.test, cfg.eval.max_examples, seed=cfg.seed)


def detection_pairs(cfg: DictConfig) -> list[tuple[str, float]]:
    """The ``(attack, eps)`` pairs whose adversarial images the detection stage reuses: each
    detector attack (``attacks``, ``unseen``, ``fit_on``) of ``eval.attacks`` that takes an eps,
    at each ``detector.eps`` the evaluation covers. None with ``detector=none``."""
    det = cfg.detector
    if det.name == "none":
        return []
    names = dict.fromkeys([*det.attacks, *det.unseen, *([det.fit_on] if det.fit_on else [])])
    pairs = []
    for name in names:
        spec = attack_spec(cfg.eval.attacks[name]) if name in cfg.eval.attacks else None
        if spec is None or not takes_eps(spec.name):
            continue
        grid = {float(e) for e in (spec.eps if spec.eps is not None else cfg.eval.eps)}
        pairs += [(name, float(eps)) for eps in det.eps if float(eps) in grid]
    return pairs


def kept_pairs(cfg: DictConfig) -> list[tuple[str, float]]:
    """What the pipeline's later stages reuse: the detector's pairs, and the explanation stage's
    PGD adversarials at its eps (when ``eval.attacks`` has ``pgd``)."""
    pairs = detection_pairs(cfg)
    explained = (EXPLAINED_ATTACK, explain_eps(cfg))
    if cfg.explain.name != "none" and EXPLAINED_ATTACK in cfg.eval.attacks:
        pairs += [] if explained in pairs else [explained]
    return pairs


@dataclass
class EvaluationReport(RobustnessReport):
    """The stage's result: the eps-grid :class:`RobustnessReport` (what later stages read) and
    the L0 curves, when configured; ``robust_accuracy_norm`` gains ``"L0"`` for each of them."""

    l0: L0Report | None = None

    @classmethod
    def extend(cls, report: RobustnessReport, l0: L0Report | None) -> EvaluationReport:
        """``report`` with the L0 curves added."""
        return cls(**{f.name: getattr(report, f.name) for f in fields(report)}, l0=l0)

    def to_results(self) -> dict:
        """The eps-grid fields with the L0 fields merged into the same keys."""
        results = super().to_results()
        for key, value in (self.l0.to_results() if self.l0 is not None else {}).items():
            results[key] = results.get(key, {}) | value if isinstance(value, dict) else value
        return results


def evaluate_stage(
    cfg: DictConfig,
    model: nn.Module,
    bundle: DataBundle,
    keep: Sequence[tuple[str, float]] = (),
) -> EvaluationReport:
    """Clean and robust accuracy (per attack and the per-example worst case over all of them),
    confidence intervals, attack cost and masking warnings, then the L0 curves when
    ``eval.l0.budgets`` is set. ``keep``: ``(attack, eps)`` pairs whose adversarial images stay
    in ``report.adversarial`` (see :func:`kept_pairs`), so that later stages use these very
    examples instead of attacking again."""
    l0_specs = l0_attacks(cfg)  # checked before any attack runs
    images, labels = evaluation_subset(cfg, bundle)
    report = evaluate_robustness(
        model,
        images,
        labels,
        attack_specs(cfg),
        eps_grid=list(cfg.eval.eps),
        batch_size=cfg.eval.batch_size,
        large_eps=cfg.eval.large_eps,
        schedule=cfg.eval.schedule,
        continuation_steps=cfg.eval.continuation_steps,
        suite=cfg.eval.suite,
        seed=cfg.seed,
        keep_adversarial=keep,
    )
    l0 = None
    if l0_specs:
        l0_images, l0_labels = stratified_subset(images, labels, cfg.eval.l0.max_examples, cfg.seed)
        l0 = l0_robustness(
            model, l0_images, l0_labels, l0_specs, list(cfg.eval.l0.budgets), cfg.eval.batch_size
        )
    return EvaluationReport.extend(report, l0)


def l0_attacks(cfg: DictConfig) -> dict[str, AttackSpec]:
    """The sparse attacks of ``eval.l0`` keyed by lower-case name ({} when no budget is set);
    a key another curve of results.json already uses is a ConfigError."""
    l0 = cfg.eval.l0
    if not l0.budgets:
        return {}
    options = OmegaConf.to_container(l0.options, resolve=True)
    unknown = sorted(set(options) - set(l0.attacks))
    if unknown:
        raise ConfigError(f"eval.l0.options names attacks not in eval.l0.attacks: {unknown}")
    specs = {str(n).lower(): AttackSpec(str(n), dict(options.get(n, {}))) for n in l0.attacks}
    clash = sorted(set(specs) & ({"worst_case", *cfg.eval.attacks}))
    if clash or len(specs) < len(l0.attacks):
        raise ConfigError(
            f"eval.l0.attacks {list(l0.attacks)} repeat a name or reuse an eval.attacks key "
            f"({clash}): every curve of results.json needs its own key"
        )
    return specs


def explain_eps(cfg: DictConfig) -> float:
    """``explain.eps``, else the middle eps of the evaluation grid."""
    grid = sorted(float(e) for e in cfg.eval.eps)
    return cfg.explain.eps if cfg.explain.eps is not None else grid[len(grid) // 2]
