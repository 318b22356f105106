"""Saving nested training state (optimizer, scheduler, RNG) without pickle.

Tensors go to a safetensors file under path-like keys; everything else goes to JSON with a
``{"__tensor__": key}`` placeholder where a tensor stood. Loading therefore never executes code
from the file, which is the point: checkpoints are often shared between people.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

_TENSOR = "__tensor__"
_INT_KEYS = "__int_keys__"


def flatten_state(state: Any, tensors: dict[str, torch.Tensor], prefix: str = "s") -> Any:
    """Replace every tensor in ``state`` by a placeholder, collecting tensors into ``tensors``."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state.detach().cpu().contiguous()
        return {_TENSOR: prefix}
    if isinstance(state, dict):
        # JSON object keys are strings; optimizer state is keyed by int parameter ids.
        int_keys = all(isinstance(k, int) for k in state) and bool(state)
        out = {str(k): flatten_state(v, tensors, f"{prefix}.{k}") for k, v in state.items()}
        if int_keys:
            out[_INT_KEYS] = True
        return out
    if isinstance(state, (list, tuple)):
        return [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(state)]
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"cannot store {type(state).__name__} in a checkpoint without pickle")


def unflatten_state(state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state`."""
    if isinstance(state, dict):
        if set(state) == {_TENSOR}:
            return tensors[state[_TENSOR]]
        int_keys = state.get(_INT_KEYS, False)
        return {
            (int(k) if int_keys else k): unflatten_state(v, tensors)
            for k, v in state.items()
            if k != _INT_KEYS
        }
    if isinstance(state, list):
        return [unflatten_state(v, tensors) for v in state]
    return state


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file (no pickle involved)."""
    return load_file(str(path))
