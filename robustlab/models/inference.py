"""Model run-time helpers shared by attacks, training, detection and the rest of the library:
the model's device, a mode/BN/gradient-preserving context, and batched prediction.

Attacks differentiate with respect to the input only. Freezing the parameters for the duration
keeps their ``.grad`` untouched even for third-party attacks that call ``loss.backward()``, and
spares autograd from recording what a weight gradient would need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from robustlab.devices import resolve_device
from robustlab.errors import ConfigError

MODEL_MODES = ("eval", "train")


def check_model_mode(mode: str) -> str:
    """Validate a ``model_mode`` argument."""
    if mode not in MODEL_MODES:
        raise ConfigError(f"model_mode must be one of {', '.join(MODEL_MODES)}, got {mode!r}")
    return mode


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def norm_buffer_copies(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    # Every buffer of a normalisation layer (running mean/var, num_batches_tracked).
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            saved.extend((buf, buf.detach().clone()) for buf in module.buffers(recurse=False))
    return saved


@contextmanager
def model_context(model: nn.Module, mode: str = "eval") -> Iterator[nn.Module]:
    """Run an attack with the model in ``mode`` and give the model back exactly as it was.

    ``"train"`` crafts with batch statistics (as some adversarial-training recipes do); the
    BN running statistics it would update are restored on exit. Every module's own
    ``training`` flag is restored, so a model with mixed modes stays mixed.
    """
    check_model_mode(mode)
    flags = [(module, module.training) for module in model.modules()]
    frozen = [p for p in model.parameters() if p.requires_grad]
    saved_buffers = norm_buffer_copies(model) if mode == "train" else []
    model.train(mode == "train")
    for param in frozen:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        for param in frozen:
            param.requires_grad_(True)
        for module, flag in flags:
            module.training = flag
        with torch.no_grad():
            for buffer, copy in saved_buffers:
                buffer.copy_(copy)


def eval_device(model: nn.Module, device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the one asked for, else the model's."""
    return model_device(model) if device is None else resolve_device(device)


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Eval-mode predicted classes (on CPU) for a whole image tensor, in batches."""
    device = eval_device(model, device)
    with model_context(model, "eval"):
        chunks = [
            model(images[i : i + batch_size].to(device)).argmax(1).cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.long)
