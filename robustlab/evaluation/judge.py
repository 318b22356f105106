"""The one judge of an evaluation: it alone decides whether a prediction is correct.

Every verdict of an evaluation goes through one [`Judge`][robustlab.evaluation.judge.Judge]:
clean accuracy, every curve's break (FGSM, PGD, margin PGD, torchattacks attacks, CW and
DeepFool points), every suite attack, every check, early stopping and "first broken by".

- A deterministic model is judged by one eval-mode forward.
- A randomized model (input or logit noise, dropout left on) is judged by the majority over
  `draws` forwards ([`MajorityVote`][robustlab.evaluation.eot.MajorityVote]): one noisy forward
  is a coin flip near the decision boundary, and counting it as a break made a randomized model
  look far less robust than it is.

An attack's own forward never decides. On a deterministic fp32 model the judge accepts the
claims of an attack that crafts on that very model (its forward is the judge's). Anything else
is judged afresh: bf16 crafting (a bf16 argmax near the boundary may differ from fp32's) and
every attack on a randomized model. There, a verdict is one majority vote per returned
adversarial image, never one per attack step: each vote is itself random, and an example
judged at every step would sooner or later draw a "fooled" majority by chance (at 11 draws an
example the model gets right 60% of the time is voted wrong once in four; the default is 101
draws, one in 40). So on a randomized
model attacks run their whole budget without early stopping (as AutoAttack's "rand" version
does) and the curves run eps by eps; a row the vote does not confirm goes on being attacked by
the next attack or eps. Every schedule, the library, the CLI, N processes and a resumed run
thus give the same verdicts up to attack randomness.
"""

from __future__ import annotations

import torch
from torch import nn

from robustlab.evaluation.eot import MajorityVote
from robustlab.models.inference import model_context


class Judge:
    """Decides "is this prediction correct" for everything in one evaluation.

    Args:
        model: the model under evaluation, mapping [0, 1] images to logits (fp32).
        draws: forwards per prediction; above 1 the prediction is their majority class (ties
            to the class of highest mean probability).

    `rows_judged` counts the rows the judge forwarded itself (a claim it could accept without a
    forward is not counted): what the judging cost, and a handle for tests.
    """

    def __init__(self, model: nn.Module, draws: int = 1) -> None:
        if not (isinstance(draws, int) and draws >= 1):
            raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
        self.model, self.draws = model, draws
        self.voter = model if draws == 1 else MajorityVote(model, draws)
        self.rows_judged = 0

    @property
    def stochastic(self) -> bool:
        """Whether predictions are majority votes (a randomized forward)."""
        return self.draws > 1

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The judged scores of `images` (on the model's device): the model's eval-mode logits,
        or the majority vote's log-scores whose argmax is the majority class."""
        self.rows_judged += len(images)
        with model_context(self.model, "eval"), torch.autocast(images.device.type, enabled=False):
            return self.voter(images.float())

    def correct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per row: whether the judged prediction of `images` is `labels` (bool, on their
        device)."""
        if len(images) == 0:
            return torch.zeros(0, dtype=torch.bool, device=labels.device)
        return self.logits(images).argmax(1) == labels

    def predict(self, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
        """The judged class of every image, in batches of `batch_size` on `device` (CPU)."""
        out = [
            self.logits(images[start : start + batch_size].to(device)).argmax(1).cpu()
            for start in range(0, len(images), batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def accepts_claims_of(self, crafting: nn.Module) -> bool:
        """Whether a fooled/unfooled claim read off a forward of `crafting` is the judge's own
        verdict: the same deterministic model, in full precision."""
        return not self.stochastic and crafting is self.model

    def confirm(
        self, adv: torch.Tensor, labels: torch.Tensor, claimed: torch.Tensor
    ) -> torch.Tensor:
        """The rows of the bool mask `claimed` (an attack says they are misclassified) that
        the judge also finds misclassified; every other row is False."""
        if not bool(claimed.any()):
            return claimed
        confirmed = claimed.clone()
        confirmed[claimed] = ~self.correct(adv[claimed], labels[claimed])
        return confirmed

    def verdict(
        self,
        adv: torch.Tensor,
        labels: torch.Tensor,
        claimed: torch.Tensor | None = None,
        *,
        crafting: nn.Module | None = None,
    ) -> torch.Tensor:
        """Per row of `adv`: misclassified (bool). `claimed`: what an attack crafting on
        `crafting` said of these very images; taken as it is when that forward was the
        judge's own ([`accepts_claims_of`][robustlab.evaluation.judge.Judge.accepts_claims_of]),
        else every row is judged."""
        if claimed is not None and crafting is not None and self.accepts_claims_of(crafting):
            return claimed
        return ~self.correct(adv, labels)


__all__ = ["Judge"]
