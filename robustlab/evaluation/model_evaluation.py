"""One call for any model: :func:`evaluate` returns an :class:`EvaluationCard`."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn

from robustlab.errors import InputError
from robustlab.evaluation.card import EvaluationCard
from robustlab.evaluation.checks_run import eot_plan, run_checks
from robustlab.evaluation.suite import worst_case
from robustlab.inputs import check_batch, output_classes
from robustlab.models.runtime import eval_device


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps_grid: Sequence[float],
    norm: str = "Linf",
    suite: str = "standard",
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    eot_iter: int | None = None,
    draws: int | None = None,
    large_eps: float | None = 0.5,
    data: str = "unknown",
    preprocessing: str = "none: the model takes [0, 1] images",
) -> EvaluationCard:
    """Worst-case robust accuracy of ANY ``model`` (an ``nn.Module`` mapping [0, 1] images to
    logits) over ``eps_grid`` under ``suite`` (``"standard"``: APGD-CE, APGD-T, Square;
    ``"fast"``), with every named check, as an :class:`EvaluationCard`.

    A randomized forward is detected and evaluated with EOT (``eot_iter`` gradients per APGD
    step, each prediction the majority over ``draws`` forwards; None: 20 and 11 when the
    forward is randomized, else 1; see :mod:`robustlab.evaluation.eot`). ``large_eps``: the Linf
    radius of the unconstrained-attack check (None: skip it). ``data``/``preprocessing``: how
    the card names the data and what the model does to its inputs.
    """
    started = time.perf_counter()
    check_batch(images, labels, eps_grid, model=model)
    _check_suite_classes(model, images)
    device = eval_device(model, device)
    stochastic, eot_iter, draws = eot_plan(model, images, device, eot_iter, draws)
    result = worst_case(
        model, images, labels, eps_grid, suite, batch_size, device, seed, norm,
        eot_iter=eot_iter, draws=draws,
    )  # fmt: skip
    found, result, _, _ = run_checks(
        model, images, labels, result, device, stochastic, batch_size, seed,
        large_eps=large_eps if norm == "Linf" else None,
    )  # fmt: skip
    results = result.to_results()
    results["clean_accuracy"] = result.survivors(0.0) / max(result.n, 1)
    results["checks"] = {name: check.to_results() for name, check in found.items()}
    seconds = time.perf_counter() - started
    return EvaluationCard.from_results(
        results, data=data, preprocessing=preprocessing, seconds=seconds
    )


def _check_suite_classes(model: nn.Module, images: torch.Tensor) -> None:
    classes = output_classes(model, images)
    if classes is not None and classes < 4:
        raise InputError(
            f"the model returns {classes} logits, but the suite's APGD-T (targeted DLR) needs "
            "at least 4 classes: evaluate it with robust_accuracy and an attack of your choice"
        )


__all__ = ["evaluate"]
