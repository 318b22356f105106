"""Attack-side indicators of failure (Pintor et al., NeurIPS 2022): did APGD finish optimising,
and does its outcome depend on the restart?

Two more APGD-CE runs (seeds other than the suite's, the suite's steps, no early stop) attack
up to ``max_examples`` examples the worst case left unbroken at the largest eps where any
survived, and record the cross-entropy of every example at every step:

- ``incomplete_optimization``: the best loss so far still rose by more than ``RISE`` (relative)
  over the last fifth of the steps, on more than ``RISING_SHARE`` of the examples: more steps
  would likely find more.
- ``non_converging_restarts``: another restart broke examples the suite's restart missed, on at
  least ``max(GRADIENT_FREE_MIN_COUNT, GRADIENT_FREE_MIN_SHARE of them)``: the outcome depends
  on the random start, so run more restarts. Whatever these runs break counts in the worst case
  (every attack run counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.attacks.apgd import APGD
from robustlab.evaluation.checks import PASS, WARN, Check
from robustlab.evaluation.grid import attack_survivors
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.worst_case_result import (
    GRADIENT_FREE_MIN_COUNT,
    GRADIENT_FREE_MIN_SHARE,
    WorstCaseResult,
)

RISE = 0.05  # relative rise of the best loss over the last fifth of the steps
RISING_SHARE = 0.5  # share of the attacked examples whose loss still rises: warn above
RESTART_KEY = "apgd_ce_restarts"  # how their breaks are credited in the worst case
MAX_EXAMPLES = 64  # survivors the two extra runs attack


@dataclass
class OptimizationDiagnosis:
    """The two checks and the per-example broken eps of the extra runs (inf: never)."""

    incomplete: Check
    restarts: Check
    broken_eps: torch.Tensor
    adversarial: torch.Tensor  # [n, ...]: the runs' images for the rows they broke, else clean


class _LossTrace:
    """A forward hook keeping every output of a model (the rows of one APGD run)."""

    def __init__(self, model: nn.Module) -> None:
        self.outputs: list[torch.Tensor] = []
        self.handle = model.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        # The run's first forward (its clean pass, without a gradient) and then its gradient
        # forwards; a judge's votes in between (no gradient) are not the run's trace.
        if torch.is_grad_enabled() or not self.outputs:
            self.outputs.append(output.detach().float().cpu())

    def step_losses(self, labels: torch.Tensor, steps: int, eot_iter: int) -> torch.Tensor | None:
        """(steps + 1, rows) cross-entropy of the rows the run attacked (those correct on its
        first, clean forward), averaged over each step's ``eot_iter`` draws; None when the run
        did not make one call per draw and step on the same rows."""
        self.handle.remove()
        labels = labels.cpu()
        if not self.outputs:
            return None
        todo = self.outputs[0].argmax(1) == labels
        calls = self.outputs[1 : 1 + eot_iter * (steps + 1)]
        if len(calls) < eot_iter * (steps + 1) or any(len(c) != int(todo.sum()) for c in calls):
            return None
        losses = [F.cross_entropy(c, labels[todo], reduction="none") for c in calls]
        return torch.stack(losses).reshape(steps + 1, eot_iter, -1).mean(1)


def still_rising(losses: torch.Tensor, rise: float = RISE) -> torch.Tensor:
    """Per row of ``losses`` (steps, rows): whether the best loss so far rose by more than
    ``rise`` (relative to its size, at least 1) over the last fifth of the steps."""
    best = losses.cummax(0).values
    at = best[max(int(0.8 * (len(best) - 1)), 0)]
    return (best[-1] - at) > rise * at.abs().clamp_min(1.0)


def optimization_checks(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    result: WorstCaseResult,
    *,
    steps: int,
    device: torch.device,
    judge: Judge,
    seed: int = 0,
    eot_iter: int = 1,
    max_examples: int = MAX_EXAMPLES,
) -> OptimizationDiagnosis | None:
    """The two checks on ``model`` (crafting; every break judged by ``judge``), or None when no
    example survived the worst case at any positive eps."""
    eps, rows = _target(result, max_examples)
    if rows is None:
        return None
    x, y = images[rows], labels[rows].cpu()
    rising, broken_runs = [], torch.zeros(len(rows), dtype=torch.bool)
    adversarial = images.detach().cpu().clone()

    def keep_breaks(batch: torch.Tensor, adv: torch.Tensor, fooled: torch.Tensor) -> None:
        new = batch[fooled.cpu() & ~broken_runs[batch]]  # the first run to break a row keeps it
        adversarial[rows[new]] = adv[fooled.cpu() & ~broken_runs[batch]].detach().cpu()

    everyone = torch.ones(len(rows), dtype=torch.bool)
    for extra in (1, 2):
        # no early stop: every row runs every step, so the trace holds one row per example
        attack = APGD(
            model, eps=eps, steps=steps, seed=seed + extra, eot_iter=eot_iter, early_stop=False
        )
        trace = _LossTrace(model)
        try:
            fooled, _, _ = attack_survivors(
                judge,
                attack,
                x,
                y,
                everyone,
                batch_size=len(rows),
                device=device,
                desc=f"restart check {extra}",
                on_batch=keep_breaks,
            )
        finally:
            trace.handle.remove()
        broken_runs |= fooled
        losses = trace.step_losses(y, steps, eot_iter)
        if losses is not None:
            rising.append(still_rising(losses))
    broken_eps = torch.full((result.n,), math.inf, dtype=torch.float64)
    broken_eps[rows[broken_runs]] = eps
    incomplete = _incomplete(rising, steps, eps)
    restarts = _restarts(int(broken_runs.sum()), len(rows), eps)
    return OptimizationDiagnosis(incomplete, restarts, broken_eps, adversarial)


def _target(result: WorstCaseResult, max_examples: int) -> tuple[float, torch.Tensor | None]:
    """The largest positive grid eps with survivors, and up to ``max_examples`` of them."""
    for eps in sorted(result.eps, reverse=True):
        alive = (result.broken_eps > eps).nonzero().squeeze(1)
        if eps > 0 and len(alive):
            return float(eps), alive[:max_examples]
    return 0.0, None


def _incomplete(rising: list[torch.Tensor], steps: int, eps: float) -> Check:
    if not rising:
        return Check(PASS, "no loss trace to judge (the rows changed during the run)")
    share = float(torch.cat(rising).float().mean())
    detail = (
        f"the best APGD-CE loss still rose by > {RISE:.0%} over the last fifth of {steps} steps "
        f"on {share:.0%} of {len(rising[0])} surviving examples at eps={eps:g}"
    )
    if share > RISING_SHARE:
        return Check(WARN, f"{detail}: the attack stopped before converging; run more steps")
    return Check(PASS, detail)


def _restarts(broken: int, attacked: int, eps: float) -> Check:
    needed = max(GRADIENT_FREE_MIN_COUNT, GRADIENT_FREE_MIN_SHARE * attacked)
    detail = (
        f"two more APGD-CE restarts broke {broken} of {attacked} examples the suite left "
        f"unbroken at eps={eps:g} (counted in the worst case)"
    )
    if broken >= needed:
        return Check(WARN, f"{detail}: the outcome depends on the random start; add restarts")
    return Check(PASS, detail)


__all__ = ["RESTART_KEY", "OptimizationDiagnosis", "optimization_checks", "still_rising"]
