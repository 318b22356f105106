"""One call for any model: `evaluate` returns an `EvaluationCard`."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn

from robustlab.errors import InputError
from robustlab.evaluation.card import EvaluationCard
from robustlab.evaluation.checks import warnings_of
from robustlab.evaluation.checks_run import eot_plan, run_checks
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.robustness import LARGE_EPS
from robustlab.evaluation.suite import worst_case
from robustlab.inputs import as_eps_grid, check_batch, check_linf_radii, output_classes
from robustlab.models.inference import eval_device
from robustlab.models.layers.normalize import describe_preprocessing


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps_grid: Sequence[float] | float,
    *,
    norm: str = "Linf",
    suite: str = "standard",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    eot_iter: int | None = None,
    draws: int | None = None,
    large_eps: float | None = LARGE_EPS,
    data: str = "unknown",
    preprocessing: str | None = None,
) -> EvaluationCard:
    """Worst-case robust accuracy of ANY model over ``eps_grid``, with every named check.

    A randomized forward is detected and evaluated with EOT: ``eot_iter`` gradients per APGD
    step, each prediction the majority over ``draws`` forwards, and the randomized suite
    (APGD-CE and APGD-DLR, as AutoAttack's "rand" version); see `robustlab.evaluation.eot`.

    Args:
        model: an ``nn.Module`` mapping [0, 1] images to logits. A model in train mode is
            evaluated in eval mode (and given back as it was); the card says so.
        images: float images in [0, 1], (N, C, H, W).
        labels: int64 labels, (N,).
        eps_grid: the radii (a number is a one-element grid); Linf radii are in [0, 1] pixel
            units (8/255, not 8).
        norm: ``"Linf"``, ``"L2"`` or ``"L1"``.
        suite: ``"standard"`` (APGD-CE, APGD-T, Square) or ``"fast"``.
        batch_size: rows per forward.
        device: where to run (default: the model's).
        seed: seeds every row's random draws.
        eot_iter: None: 20 for a randomized forward, else 1.
        draws: None: 11 for a randomized forward, else 1.
        large_eps: the Linf radius of the unconstrained-attack check (None: skip it).
        data: how the card names the data.
        preprocessing: what the model does to its inputs, for the card (None: read off
            the model: its first `Normalize` layer, or none).

    Returns:
        The evaluation card: clean and worst-case accuracy with 95% intervals, the checks
        and how far to trust the number.
    """
    started = time.perf_counter()
    eps_grid = as_eps_grid(eps_grid)
    check_batch(images, labels, eps_grid, model=model)
    if norm == "Linf":
        check_linf_radii(eps_grid)
    _check_suite_classes(model, images)
    device = eval_device(model, device)
    notes = _mode_notes(model)
    stochastic, eot_iter, draws = eot_plan(model, images, device, eot_iter, draws)
    judge = Judge(model, draws)
    result = worst_case(
        model,
        images,
        labels,
        eps_grid,
        suite=suite,
        norm=norm,
        batch_size=batch_size,
        device=device,
        seed=seed,
        eot_iter=eot_iter,
        judge=judge,
    )
    found, result, _, _ = run_checks(
        model,
        images,
        labels,
        result,
        judge=judge,
        device=device,
        stochastic=stochastic,
        batch_size=batch_size,
        seed=seed,
        large_eps=large_eps if norm == "Linf" else None,
    )
    results = result.to_results()
    results["clean_accuracy"] = result.survivors(0.0) / max(result.n, 1)
    results["checks"] = {name: check.to_results() for name, check in found.items()}
    results["warnings"] = warnings_of(found)
    preprocessing = describe_preprocessing(model) if preprocessing is None else preprocessing
    seconds = time.perf_counter() - started
    return EvaluationCard.from_results(
        results, data=data, preprocessing=preprocessing, seconds=seconds, notes=notes
    )


def _mode_notes(model: nn.Module) -> list[str]:
    """What the card says of the model's mode: attacks and the judge run it in eval mode."""
    training = sum(module.training for module in model.modules())
    if not training:
        return []
    return [
        f"the model was in train mode ({training} modules): it was evaluated in eval mode "
        "(BatchNorm running statistics, dropout off) and given back in train mode"
    ]


def _check_suite_classes(model: nn.Module, images: torch.Tensor) -> None:
    classes = output_classes(model, images)
    if classes is not None and classes < 4:
        raise InputError(
            f"the model returns {classes} logits, but the suite's APGD-T (targeted DLR) needs "
            "at least 4 classes: evaluate it with robust_accuracy and an attack of your choice"
        )


__all__ = ["evaluate"]
