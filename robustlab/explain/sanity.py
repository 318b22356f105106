"""Model-parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

A map that explains the model must change when the model's weights are replaced by random
ones. We re-initialise every layer of a copy of the model (each module's own
``reset_parameters``, which also resets BatchNorm statistics) and report, per example, the
Spearman rank correlation between the trained and the randomised model's maps of the same
class: near 1 means the method ignores the weights (it shows the input, not the model).
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from robustlab.explain.attribute import attribute, importance
from robustlab.explain.compare import spearman
from robustlab.explain.seeding import seeded
from robustlab.models.inference import model_device


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every resettable layer re-initialised (the original untouched);
    buffers without a reset, such as the input normalisation, are kept."""
    clone = copy.deepcopy(model)
    with seeded(seed, model_device(model)):
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone.eval()


def randomization_correlation(
    model: nn.Module,
    images: Tensor,
    target: Tensor,
    method: str,
    *,
    trained_maps: Tensor | None = None,
    randomized: nn.Module | None = None,
    seed: int = 0,
    **options: object,
) -> Tensor:
    """Per-example Spearman correlation of the method's importance between ``model`` and its
    randomised copy (``trained_maps``/``randomized``: reuse what is already computed)."""
    if trained_maps is None:
        trained_maps = attribute(model, images, target, method=method, **options)
    if randomized is None:
        randomized = randomized_copy(model, seed)
    random_maps = attribute(randomized, images, target, method=method, **options)
    return spearman(importance(trained_maps, method), importance(random_maps, method))
