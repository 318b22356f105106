"""Load checkpoints saved by reference code into robustlab's matching architecture.

Two layouts: the TRADES/RobustBench WideResNet (``block1.layer.0.conv1.weight``, ...) and
fast_adversarial's PreActResNet-18 (``layer1.0.conv1.weight``, ...), used by RobustBench's
``Wong2020Fast``. Files are read with ``weights_only=True``: tensors, never pickled objects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from robustlab.errors import CheckpointError, ConfigError
from robustlab.models.registry import create_model

Stats = float | Sequence[float] | None


def _stage(suffix: str):
    """Replacement for ``<stage>(\\d+)<sep>(\\d+)``: reference stages count from 1, ours from 0."""
    return lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.{suffix}"


# (pattern of a reference key, its robustlab name); the first match wins.
WRN_RULES = [
    (r"^conv1\.", "stem.0."),
    (r"^block(\d+)\.layer\.(\d+)\.convShortcut\.", _stage("shortcut.")),
    (r"^block(\d+)\.layer\.(\d+)\.", _stage("")),
    (r"^bn1\.", "final_act.0."),
    (r"^fc\.", "head.fc."),
]
PREACT_RULES = [
    (r"^conv1\.", "stem.0."),
    (r"^layer(\d+)\.(\d+)\.shortcut\.0\.", _stage("shortcut.")),
    (r"^layer(\d+)\.(\d+)\.", _stage("")),
    (r"^bn\.", "final_act.0."),
    (r"^linear\.", "head.fc."),
]
# Some RobustBench WideResNets carry an unused ``sub_block1`` that their forward never calls.
UNUSED = re.compile(r"^sub_block1\.")
OWN_BUFFERS = ("normalize.mean", "normalize.std")


def _layout(name: str) -> list:
    if name == "wide_resnet" or re.fullmatch(r"wrn\d+_\d+", name):
        return WRN_RULES
    if name == "preact_resnet18":
        return PREACT_RULES
    raise ConfigError(
        f"no reference layout for model '{name}'; import_weights reads wide_resnet, wrn*_* "
        f"(TRADES/RobustBench) and preact_resnet18 (fast_adversarial)"
    )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a checkpoint file: a bare state dict or one under "state_dict"/"model"."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file {path} does not exist; give the downloaded .pt path"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a foreign or corrupt file
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # torch colours its message
        first = text.splitlines()[0] if text else type(error).__name__
        raise CheckpointError(f"cannot read {path} as a tensor-only checkpoint: {first}") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise CheckpointError(
            f"{path} holds no state dict of tensors (nor one under state_dict/model)"
        )
    return {k.removeprefix("module."): v for k, v in data.items()}


def map_keys(state: dict[str, Tensor], rules: list) -> dict[str, Tensor]:
    """Reference key names -> robustlab names; unmatched keys are kept for the error message."""
    mapped = {}
    for key, value in state.items():
        if UNUSED.match(key):
            continue
        new = key
        for pattern, repl in rules:
            new, hits = re.subn(pattern, repl, key, count=1)
            if hits:
                break
        mapped[new] = value
    return mapped


def _check_match(name: str, model: nn.Module, state: dict[str, Tensor]) -> None:
    expected = {k: v.shape for k, v in model.state_dict().items() if k not in OWN_BUFFERS}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not match {name}: {len(missing)} missing keys (first: "
            f"{missing[:3]}), {len(unexpected)} unexpected keys (first: {unexpected[:3]}); "
            f"check the model name and its depth/width options"
        )
    for key, shape in expected.items():
        if state[key].shape != shape:
            raise CheckpointError(
                f"checkpoint does not match {name}: {key} has shape {tuple(state[key].shape)}, "
                f"the model expects {tuple(shape)}; check the depth/width options"
            )


def import_weights(
    name: str, path: str | Path, mean: Stats = None, std: Stats = None, **options: object
) -> nn.Module:
    """A robustlab ``name`` model (eval mode) holding the reference checkpoint at ``path``.

    ``mean``/``std`` are the normalisation the reference applied outside its model (None for
    RobustBench WideResNets, which take [0, 1]); ``options`` go to
    [`create_model`][robustlab.models.create_model] (e.g. ``depth``/``widen_factor``). Classes and
    input channels are read from the file.
    """
    rules = _layout(name)
    state = map_keys(read_state_dict(path), rules)
    head, stem = state.get("head.fc.weight"), state.get("stem.0.weight")
    if head is None or stem is None:
        raise CheckpointError(
            f"{path} has no classifier/stem weights of the {name} layout "
            f"(looked for fc/linear.weight and conv1.weight); check the model name"
        )
    model = create_model(name, head.shape[0], stem.shape[1], mean=mean, std=std, **options)
    _check_match(name, model, state)
    own = {k: v for k, v in model.state_dict().items() if k in OWN_BUFFERS}
    model.load_state_dict({**state, **own})
    return model.eval()
