"""What a layer keeps of its input: feature inversion and class visualisation.

[`invert`][robustlab.explain.invert] reconstructs inputs from one layer's features,
``x* = argmin_x ||f_l(x) - f_l(x0)||^2 / ||f_l(x0)||^2 + weight * R(x)`` (Mahendran & Vedaldi
2015); [`visualize_class`][robustlab.explain.visualize_class] maximises one class logit from seed
images under the same prior (the "image synthesis" of Engstrom et al. 2019, "Adversarial Robustness
as a Prior for Learned Representations", whose robust models invert and synthesise perceptually
aligned images).

The optimiser is Adam with projection onto the [0, 1] box after every step, with a cosine
learning-rate decay. Projection keeps every iterate a valid image, works batched on any device
and with the non-quadratic TV prior; L-BFGS-B would need the whole problem in float64 on the
CPU, and torch's own L-BFGS has no bounds. The per-image losses are summed before the backward
pass, so (with the model in eval mode, BatchNorm fixed) every image is optimised independently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.explain.regularizers import get_regularizer
from robustlab.explain.seeding import seeded
from robustlab.models.inference import model_context, model_device
from robustlab.progress import progress

Layer = int | str  # a stage index of forward_features, or "logits"
STARTS = ("constant", "noise")


@dataclass
class Inversion:
    """Reconstructions of ``images`` from one layer, with how close they came (per image).

    ``feature_error``: ``||f(x*) - f(x0)|| / ||f(x0)||``; ``pixel_error``: the root-mean-square
    pixel distance of the reconstruction to the original, in [0, 1] units.
    """

    images: Tensor
    feature_error: Tensor
    pixel_error: Tensor
    layer: Layer

    def medians(self) -> dict[str, float]:
        """Median feature and pixel errors over the images."""
        return {
            "feature_error": float(self.feature_error.median()),
            "pixel_error": float(self.pixel_error.median()),
        }


@dataclass
class ClassVisualization:
    """Images optimised towards a class, with the model's probability of that class."""

    images: Tensor
    target: Tensor
    probability: Tensor


def layer_output(model: nn.Module, images: Tensor, layer: Layer) -> Tensor:
    """The logits (``layer="logits"``) or stage ``layer`` of ``model.forward_features``."""
    if layer == "logits":
        return model(images)
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise ConfigError(f"layer must be a stage index or 'logits', got {layer!r}")
    if not hasattr(model, "forward_features"):
        raise ConfigError("layer by stage index needs a model with forward_features; use 'logits'")
    features = model.forward_features(images)
    if not -len(features) <= layer < len(features):
        raise ConfigError(
            f"layer {layer} is out of range: the model has {len(features)} stages "
            f"(0..{len(features) - 1}) or 'logits'"
        )
    return features[layer]


def optimize_images(
    start: Tensor, objective: Callable[[Tensor], Tensor], *, steps: int, lr: float, desc: str
) -> Tensor:
    """Projected Adam in the [0, 1] box: minimize ``objective(x)`` (one loss per image)."""
    if steps < 1 or lr <= 0:
        raise ConfigError(f"steps must be >= 1 and lr > 0, got steps={steps}, lr={lr}")
    x = start.detach().clone().clamp_(0.0, 1.0).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr / 100)
    for _ in progress(range(steps), desc):
        loss = objective(x).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    return x.detach()


def starting_images(like: Tensor, start: str, seed: int) -> Tensor:
    """Mid-grey images (``"constant"``) or uniform noise in [0, 1] (``"noise"``, seeded)."""
    if start == "constant":
        return torch.full_like(like, 0.5)
    if start == "noise":
        with seeded(seed, like.device):
            return torch.rand(like.shape, device=like.device, dtype=like.dtype)
    raise ConfigError(f"unknown start {start!r}: choose one of {', '.join(STARTS)}")


def invert(
    model: nn.Module,
    images: Tensor,
    layer: Layer,
    *,
    regularizer: str = "tv",
    weight: float = 0.01,
    steps: int = 300,
    lr: float = 0.05,
    start: str = "constant",
    seed: int = 0,
) -> Inversion:
    """Reconstruct ``images`` (N, C, H, W in [0, 1]) from ``layer``'s features.

    ``regularizer``: ``"tv"`` (total variation), ``"l2"`` or ``"none"``, scaled by ``weight``
    against the relative squared feature error. The search starts from mid-grey
    (``start="constant"``) or seeded uniform noise (``"noise"``). Returns CPU tensors.
    """
    prior = get_regularizer(regularizer)
    device = model_device(model)
    originals = images.detach().to(device)
    with model_context(model, "eval"):
        with torch.no_grad():
            target = layer_output(model, originals, layer).flatten(1)
        scale = target.pow(2).sum(1).clamp_min(1e-12)

        def objective(x: Tensor) -> Tensor:
            error = (layer_output(model, x, layer).flatten(1) - target).pow(2).sum(1) / scale
            return error + weight * prior(x)

        start_images = starting_images(originals, start, seed)
        found = optimize_images(
            start_images, objective, steps=steps, lr=lr, desc=f"invert layer {layer}"
        )
        with torch.no_grad():
            reached = layer_output(model, found, layer).flatten(1)
    feature_error = (reached - target).norm(dim=1) / scale.sqrt()
    pixel_error = (found - originals).pow(2).flatten(1).mean(1).sqrt()
    return Inversion(found.cpu(), feature_error.cpu(), pixel_error.cpu(), layer)


def visualize_class(
    model: nn.Module,
    target: int | Tensor,
    seeds: Tensor,
    *,
    regularizer: str = "tv",
    weight: float = 0.01,
    steps: int = 300,
    lr: float = 0.05,
) -> ClassVisualization:
    """Images that maximise the ``target`` logit, starting from ``seeds`` (N, C, H, W).

    ``target``: one class for every seed, or one per seed. The loss is
    ``-logit_target(x) + weight * R(x)``; Engstrom et al. seed from a class-conditional
    Gaussian fitted to training images (pass such draws, or real images, as ``seeds``).
    """
    prior = get_regularizer(regularizer)
    device = model_device(model)
    classes = torch.as_tensor(target, dtype=torch.long).reshape(-1).to(device)
    classes = classes.expand(len(seeds)) if len(classes) == 1 else classes
    if len(classes) != len(seeds):
        raise ConfigError(f"got {len(classes)} targets for {len(seeds)} seed images")
    with model_context(model, "eval"):

        def objective(x: Tensor) -> Tensor:
            logits = model(x)
            return -logits.gather(1, classes[:, None]).squeeze(1) + weight * prior(x)

        found = optimize_images(
            seeds.to(device), objective, steps=steps, lr=lr, desc="visualize class"
        )
        with torch.no_grad():
            probability = model(found).softmax(1).gather(1, classes[:, None]).squeeze(1)
    return ClassVisualization(found.cpu(), classes.cpu(), probability.cpu())
