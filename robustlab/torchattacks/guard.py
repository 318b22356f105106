"""What robustlab adds to every call of a drop-in attack: one input check, and the model
given back exactly as it came in.

torchattacks checks nothing (an image in 0-255 units or a label past the last class fails
deep inside an attack, or not at all) and leaves a model that was in eval mode in train mode
after ``set_model_training_mode(model_training=True)``. Here an input outside the contract is
one `robustlab.errors.InputError` line, and every module's mode, the BatchNorm running
statistics and the parameters' gradients are restored after the attack (some attacks call
``loss.backward()``, which accumulates into them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from robustlab import inputs as checks
from robustlab.models.inference import norm_buffer_copies

# How far outside [0, 1] an inverse-normalized pixel may be and still count as inside
# (normalize-then-invert rounding moves 0 and 1 by a few ulps).
ROUNDING = 1e-5


def check_call(
    images: torch.Tensor, labels: torch.Tensor | None, model: nn.Module, unit: torch.Tensor
) -> None:
    """InputError unless ``unit`` (the images in [0, 1] pixel space) is a finite float tensor
    in [0, 1] and ``labels`` (when given) hold one class index of the model per image."""
    if torch.is_tensor(unit) and unit.is_floating_point():
        near = (unit >= -ROUNDING) & (unit <= 1 + ROUNDING)
        unit = torch.where(near, unit.clamp(0, 1), unit)
    checks.check_images(unit, ndim=None)
    if labels is None:
        return
    checks.check_labels(labels, len(images))
    classes = checks.output_classes(model, images) if images.ndim > 1 else None
    checks.check_labels(labels, len(images), classes)


@contextmanager
def model_restored(model: nn.Module) -> Iterator[None]:
    """Run the body, then give every module its training flag, every BatchNorm its running
    statistics and every parameter its gradient back, even when the body raised."""
    flags = [(module, module.training) for module in model.modules()]
    statistics = norm_buffer_copies(model)
    grads = [
        (param, None if param.grad is None else param.grad.detach().clone())
        for param in model.parameters()
    ]
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag
        with torch.no_grad():
            for buffer, copy in statistics:
                buffer.copy_(copy)
        for param, grad in grads:
            param.grad = grad
