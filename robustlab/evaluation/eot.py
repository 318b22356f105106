"""Randomized models: telling them apart, attacking them with EOT, and what robust means for them.

A model whose forward is not deterministic (input noise, random transforms, dropout left on)
gives every attack a different model at each call. Gradients of one draw then point somewhere
the next draw does not follow, and one-draw attacks overstate robustness (Athalye et al. 2018,
Expectation over Transformation). The evaluation therefore:

- detects it (`is_stochastic`: two eval-mode forwards of the same images differ);
- crafts with APGD averaging its gradient over ``eot_iter`` draws per step, as AutoAttack's
  ``version="rand"`` does (APGD-CE and APGD-T with ``eot_iter=20``);
- judges every prediction, clean and adversarial, by the MAJORITY over ``draws`` forwards
  (`MajorityVote`, ties to the class of highest mean probability): an example is robust
  at eps when the majority class of its adversarial is still the label.

`InputNoise` wraps a model with Gaussian input noise at inference, e.g. a model trained
with ``defense=gaussian_noise`` evaluated with its noise on.
"""

from __future__ import annotations

import torch
from torch import nn

from robustlab.models.inference import model_context

EOT_ITER = 20  # AutoAttack's rand version
# Odd: a two-class vote has no tie. Large, because a vote is itself random and an evaluation
# votes on each example several times (once per attack and eps): at 11 draws an example the
# model gets right 60% of the time is voted wrong one time in four, at 101 draws one in 40. A
# vote costs `draws` forwards per row, about 2% of one 100-step APGD run with 20 EOT draws.
DRAWS = 101


class InputNoise(nn.Module):
    """``model(x + sigma * N(0, I))``, a fresh draw at every call, in train and eval mode alike
    (not clipped to [0, 1], as the ``gaussian_noise`` defense trained it)."""

    def __init__(self, model: nn.Module, sigma: float) -> None:
        super().__init__()
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}")
        self.model, self.sigma = model, float(sigma)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images + self.sigma * torch.randn_like(images))


class MajorityVote(nn.Module):
    """The prediction of a randomized ``model`` as the majority class over ``draws`` forwards.

    The output's argmax is the majority class, ties broken by the mean softmax probability:
    ``log(votes / draws + mean_prob / (2 draws))`` (the tie-break term is below one vote's
    weight, so it never overturns a majority). It is what the evaluation JUDGES with; attacks
    craft on the randomized model itself.
    """

    def __init__(self, model: nn.Module, draws: int = DRAWS) -> None:
        super().__init__()
        if not (isinstance(draws, int) and draws >= 1):
            raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
        self.model, self.draws = model, draws

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        votes, probs = None, None
        for _ in range(self.draws):
            logits = self.model(images)
            one_hot = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1])
            votes = one_hot if votes is None else votes + one_hot
            p = logits.softmax(1)
            probs = p if probs is None else probs + p
        scores = votes / self.draws + probs / (2 * self.draws * self.draws)
        return scores.clamp_min(1e-12).log()


@torch.no_grad()
def is_stochastic(model: nn.Module, images: torch.Tensor, tries: int = 2) -> bool:
    """Whether eval-mode forwards of the same ``images`` (a small batch on the model's device)
    differ beyond float rounding across ``tries`` + 1 calls."""
    with model_context(model, "eval"):
        first = model(images)
        for _ in range(tries):
            if not torch.allclose(model(images), first, rtol=1e-4, atol=1e-5):
                return True
    return False


__all__ = ["DRAWS", "EOT_ITER", "InputNoise", "MajorityVote", "is_stochastic"]
