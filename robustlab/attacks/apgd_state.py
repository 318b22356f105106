"""The per-example state of one APGD run and its two step-size rules: the oscillation rule of
Linf/L2 APGD (Croce & Hein 2020) and the sparsity rule of L1-APGD (Croce & Hein 2021)."""

from __future__ import annotations

import torch

# L1-APGD (Croce & Hein 2021, "Mind the box", https://arxiv.org/abs/2103.01208): the first
# steps move the top 20% coordinates by |grad|; at a checkpoint the step moves 1/1.5 as many
# coordinates as the best point has changed; a best point that got >= 5% sparser restarts
# there at the full step size, any other row shrinks its step by 1.5, down to a tenth.
L1_INITIAL_SPARSITY = 0.2
L1_SPARSITY_SHRINK = 1.5
L1_SPARSER = 0.95
L1_STEP_SHRINK = 1.5
L1_MIN_STEP_FRACTION = 0.1


class RunState:
    """Per-example state of one APGD run, over the rows still attacked: their images, labels,
    targets, radii and original index; iterate, previous iterate, gradient, step size; best iterate,
    loss and gradient; loss history and what the last checkpoint decided. L1 only: the fraction
    of coordinates a step moves (``sparsity``) and the best point's L0 at the last checkpoint."""

    ROWS = ("images", "labels", "target", "radius", "index", "adv", "previous", "grad")
    ROWS += ("step_size", "full_step")
    ROWS += ("best", "best_grad", "best_loss", "best_at_check", "reduced")
    ROWS += ("sparsity", "l0_at_check")

    def __init__(self, data, adv, grad, loss, *, step_size: torch.Tensor, steps: int, first: float):
        self.images, self.labels, self.target, self.radius = data
        self.index = torch.arange(len(adv), device=adv.device)
        self.adv, self.previous, self.grad = adv, adv.clone(), grad
        self.best, self.best_grad, self.best_loss = adv.clone(), grad.clone(), loss.clone()
        # per row: the step size, and the full step L1's sparsity rule resets it to
        self.step_size, self.full_step = step_size.clone(), step_size.clone()
        # Row 0 stands before the first step. The reference compares the first step's loss
        # with 0 there (an unwritten entry): always an increase for its cross-entropy (> 0),
        # never for DLR losses of unfooled examples (< 0). Kept, for the reference's schedule.
        self.history = loss.new_zeros((steps + 1, len(loss)))
        self.history[0] = first
        self.best_at_check = loss.clone()
        self.reduced = torch.ones_like(loss, dtype=torch.bool)
        features = float(adv[0].numel()) if len(adv) else 1.0
        self.sparsity = torch.full_like(loss, L1_INITIAL_SPARSITY)
        self.l0_at_check = torch.full_like(loss, features)

    def __len__(self) -> int:
        return len(self.index)

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row not in the boolean mask ``rows``."""
        for name in self.ROWS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[rows])
        self.history = self.history[:, rows]

    def record(self, i: int, adv, grad, loss) -> None:
        self.adv, self.grad, self.history[i + 1] = adv, grad, loss
        better = loss > self.best_loss
        self.best[better], self.best_grad[better] = adv[better], grad[better]
        self.best_loss[better] = loss[better]

    def top_k(self) -> torch.Tensor:
        """L1: how many coordinates each row's next step moves (at least one)."""
        features = self.adv[0].numel() if len(self) else 1
        return (self.sparsity * features).ceil().clamp(1, features).long()

    def check(self, i: int, length: int, rho: float) -> None:
        """Halve the step of the rows that oscillate or stalled, and send them back to their
        best point."""
        history = self.history[i + 1 - length : i + 2]
        increases = (history[1:] > history[:-1]).sum(dim=0)
        oscillating = increases <= length * rho
        stalled = ~self.reduced & (self.best_at_check >= self.best_loss)
        reduce = oscillating | stalled
        self.reduced, self.best_at_check = reduce, self.best_loss.clone()
        self.step_size[reduce] /= 2.0
        self._restart(reduce)

    def check_sparsity(self) -> None:
        """L1: adapt the step's sparsity to the best point's, reset the step of the rows whose
        best point got sparser (and send them back there), shrink the others' step."""
        l0 = (self.best != self.images).flatten(1).sum(dim=1).to(self.sparsity.dtype)
        sparser = l0 / self.l0_at_check.clamp(min=1) < L1_SPARSER
        self.sparsity = l0 / self.adv[0].numel() / L1_SPARSITY_SHRINK
        full_step = self.full_step
        self.step_size = torch.where(sparser, full_step, self.step_size / L1_STEP_SHRINK)
        self.step_size = self.step_size.clamp(full_step * L1_MIN_STEP_FRACTION, full_step)
        self.l0_at_check = l0
        self._restart(sparser)

    def _restart(self, rows: torch.Tensor) -> None:
        self.adv[rows], self.grad[rows] = self.best[rows], self.best_grad[rows]
