"""torchattacks' ``set_normalization_used``: attacks on normalised inputs.

After ``attack.set_normalization_used(mean, std)`` an attack takes normalised inputs
``(x - mean) / std``, maps them back to [0, 1], attacks there (the model sees normalised
images) and returns normalised adversarial inputs, exactly as torchattacks does. A model that
already normalises inside (robustlab models, through `robustlab.models.Normalize`)
would see its inputs normalised twice: the attack then warns and leaves the normalising to the
model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from robustlab.models.layers.normalize import Normalize

Stats = Sequence[float] | torch.Tensor


def normalization_stats(mean: Stats, std: Stats) -> dict[str, torch.Tensor]:
    """``{"mean", "std"}`` as (1, C, 1, 1) float tensors, torchattacks' ``normalization_used``."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
    if len(mean_t) != len(std_t) or not (std_t > 0).all():
        raise ValueError(
            f"set_normalization_used needs one mean and one std > 0 per channel, got "
            f"{mean_t.tolist()} and {std_t.tolist()}"
        )
    return {"mean": mean_t.reshape(1, -1, 1, 1), "std": std_t.reshape(1, -1, 1, 1)}


def normalize(inputs: torch.Tensor, stats: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(inputs - mean) / std``."""
    return (inputs - stats["mean"].to(inputs.device)) / stats["std"].to(inputs.device)


def inverse_normalize(inputs: torch.Tensor, stats: dict[str, torch.Tensor]) -> torch.Tensor:
    """``inputs * std + mean``: normalised inputs back in [0, 1]."""
    return inputs * stats["std"].to(inputs.device) + stats["mean"].to(inputs.device)


def normalises_inside(model: nn.Module) -> bool:
    """Whether ``model`` holds a `Normalize` that is not the identity."""
    return any(
        isinstance(m, Normalize) and (bool((m.mean != 0).any()) or bool((m.std != 1).any()))
        for m in model.modules()
    )


def warn_normalised_inside(attack: str, model: nn.Module) -> None:
    """The warning for ``set_normalization_used`` on a model that normalises inside."""
    warnings.warn(
        f"{attack}.set_normalization_used: {type(model).__name__} already normalises its inputs "
        "inside, so the attack does not normalise them again before the model; it still maps "
        "its (normalised) inputs back to [0, 1] and returns normalised adversarial inputs. "
        "Give robustlab models [0, 1] images and drop set_normalization_used.",
        UserWarning,
        stacklevel=3,
    )


class NormalizedModel(nn.Module):
    """``model((x - mean) / std)``: what the model sees while a normalising attack runs."""

    def __init__(self, model: nn.Module, stats: dict[str, torch.Tensor]):
        super().__init__()
        self.model = model
        self.stats = stats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(normalize(x, self.stats))


__all__ = [
    "NormalizedModel",
    "inverse_normalize",
    "normalises_inside",
    "normalization_stats",
    "normalize",
    "warn_normalised_inside",
]
