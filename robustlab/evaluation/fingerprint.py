"""Fingerprints of what an evaluation depends on: the model's weights, the evaluated data (and
which examples of the whole set they are) and the evaluation's settings.

A resumable evaluation stores them with its state and refuses a state whose fingerprints differ
(`robustlab.evaluation.resume_state`): a state is never reused for another model, other
data or other settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn


def _update(digest, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    # a uint8 view hashes every dtype (bf16 has no NumPy equivalent)
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def tensors_digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 (hex, 16 characters) of the tensors' dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        _update(digest, tensor)
    return digest.hexdigest()[:16]


def model_fingerprint(model: nn.Module) -> str:
    """Digest of the model's class and state dict (weights and buffers, by name)."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        _update(digest, tensor)
    return digest.hexdigest()[:16]


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """Digest of the settings (JSON with sorted keys; anything else by its ``repr``)."""
    text = json.dumps(config, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def evaluation_fingerprint(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    example_ids: torch.Tensor,
    config: Mapping[str, Any],
) -> dict[str, str]:
    """``{"model", "data", "config"}`` digests of one evaluation (``example_ids``: where the
    evaluated rows sit in the whole set, so that another shard is other data)."""
    return {
        "model": model_fingerprint(model),
        "data": tensors_digest([images, labels.long(), example_ids.long()]),
        "config": config_fingerprint(config),
    }


__all__ = [
    "config_fingerprint",
    "evaluation_fingerprint",
    "model_fingerprint",
    "tensors_digest",
]
