"""Adversarial examples kept while an eps grid is evaluated, so that later stages reuse them.

A detector or an explanation method that needs the adversarial images of the evaluated test
set should get the very images that produced the robust accuracy, not a second attack with its
own random start (and its own, different, accuracy). The keeper is filled as rows leave a grid
eps, from tensors the attack already has: it costs no forward or backward pass, only one CPU
tensor shaped like the images per kept threshold.

Per threshold ``t``, row i holds:

- the adversarial example that first fooled example i at a grid eps <= t (inside the t ball);
- for an example that survived every grid eps <= t, the iterate with which it left the largest
  of them (the attack's final iterate at t when t is on the grid), so that clean and attacked
  inputs can still be compared;
- the clean image for an example never attacked (misclassified clean, or t below the grid).

The per-example worst case over several attacks (``("worst_case", eps)`` of
`evaluate_robustness`) is gathered once the run is over, by
`robustlab.evaluation.kept_images`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import torch

from robustlab.errors import ConfigError

WORST_CASE = "worst_case"  # the key of the per-example worst case over every attack


class AdversarialKeeper:
    """One CPU tensor per eps threshold, shaped like ``images`` and starting as a clean copy.

    ``grid``: the attack's eps levels in the order the attack indexes them (ascending).
    """

    def __init__(self, images: torch.Tensor, grid: Sequence[float], thresholds: Iterable[float]):
        levels = [float(e) for e in grid]
        if levels != sorted(levels):
            raise ValueError(f"the eps grid of an adversarial keeper must ascend, got {levels}")
        # inf after the last level: a survivor of the last eps is kept for every larger threshold
        self.grid = torch.tensor([*levels, math.inf], dtype=torch.float64)
        self.tensors = {float(t): images.detach().cpu().clone() for t in dict.fromkeys(thresholds)}

    def __bool__(self) -> bool:
        return bool(self.tensors)

    def record(
        self,
        index: torch.Tensor,
        adv: torch.Tensor,
        fooled: torch.Tensor,
        level: int | torch.Tensor,
    ) -> None:
        """Rows ``index`` (of the evaluated images) leave grid level ``level`` (one for all, or
        one per row): the ``fooled`` ones with their adversarial example ``adv``, the others
        with their last iterate there."""
        if not self.tensors or len(index) == 0:
            return
        index, fooled = index.detach().cpu(), fooled.detach().cpu()
        level = torch.as_tensor(level).cpu().expand(len(index))
        eps, upper = self.grid[level], self.grid[level + 1]
        adv = adv.detach().cpu()
        for threshold, tensor in self.tensors.items():
            # fooled at eps <= t stays fooled at t; a survivor is kept where its level is the
            # largest one <= t
            write = (eps <= threshold) & (fooled | (upper > threshold))
            tensor[index[write]] = adv[write].to(tensor.dtype)


def kept_pairs(
    keep: Collection[tuple[str, float]],
    grids: Mapping[str, Sequence[float] | None],
    eps_grid: Sequence[float],
) -> list[tuple[str, float]]:
    """The requested ``(attack key, eps)`` pairs as ``(key, float(eps))``, each one evaluated:
    ``grids[key]`` is the attack's eps grid (None: it runs once without eps) and
    ``"worst_case"`` takes an eps of ``eps_grid``. Anything else is a ConfigError."""
    pairs = []
    for item in keep:
        try:
            key, eps = item
            eps = float(eps)
        except (TypeError, ValueError):
            raise ConfigError(
                f"keep_adversarial takes (attack key, eps) pairs, got {item!r}"
            ) from None
        if key != WORST_CASE and key not in grids:
            known = ", ".join([*grids, WORST_CASE])
            raise ConfigError(f"keep_adversarial: {key!r} is not an evaluated attack ({known})")
        grid = eps_grid if key == WORST_CASE else grids[key]
        if grid is None:
            raise ConfigError(
                f"keep_adversarial: attack {key!r} runs once without an eps budget; only "
                "attacks with an eps grid keep adversarial examples per eps"
            )
        if eps not in {float(e) for e in grid}:
            raise ConfigError(
                f"keep_adversarial: {key} was not evaluated at eps={eps!r} (its grid: "
                f"{sorted(float(e) for e in grid)}); ask for an eps of the grid"
            )
        pairs.append((key, eps))
    return list(dict.fromkeys(pairs))


__all__ = [
    "WORST_CASE",
    "AdversarialKeeper",
    "kept_pairs",
]
