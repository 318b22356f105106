"""A Lipschitz bound of a whole network (L2 -> L2, input pixels to logits) and the margin
certificate it gives (Tsuzuku, Sato & Sugiyama 2018, "Lipschitz-Margin Training").

The bound is the product of per-layer bounds along the network:

- input normalisation ``(x - mean) / std``: ``max_c 1 / std_c``;
- convolution / linear layer with the BatchNorm after it folded in: its spectral norm
  (``robustlab.certify.operator_norm``); a lone BatchNorm:
  ``max_c |gamma_c| / sqrt(var_c + eps)``;
- ReLU, flatten, identity: 1; average pooling: its operator norm (``1 / sqrt(HW)`` for global
  pooling); max pooling: ``sqrt(prod_d ceil(k_d / s_d))`` (each input sits in at most that many
  windows, and a max is 1-Lipschitz in the sup norm);
- residual block ``y = branch(x) + shortcut(x)``: ``L_branch + L_shortcut`` (``1 + L_branch`` for
  the identity), the ReLU after the sum adds nothing;
- Squeeze-and-Excitation ``SE(u) = u * g(u)`` with ``g = sigmoid(W2 relu(W1 mean(u)))`` in (0, 1):
  the gate depends on the input, so ``SE`` is NOT 1-Lipschitz. From
  ``SE(u) - SE(v) = (u - v) g(u) + v (g(u) - g(v))``,
  ``||SE(u) - SE(v)|| <= (1 + max_c ||v_c|| * ||W1|| ||W2|| / (4 sqrt(HW))) ||u - v||``
  (sigmoid is 1/4-Lipschitz, the spatial mean has norm 1/sqrt(HW)). ``max_c ||v_c||`` is bounded
  over the whole input box: inputs lie within ``R0 = 0.5 sqrt(d)`` of the box center ``x0``, so
  the SE input lies within ``L_prefix R0`` of its value at ``x0``, and
  ``max_c ||v_c|| <= max_c ||v_c(x0)|| + L_prefix R0``. The bound holds on [0, 1]^d, where
  every attack of this library stays.

The product ignores that ReLUs switch units off and that consecutive layers' worst directions do
not line up, so for a trained network it is loose by orders of magnitude; the README gives the
figures. It is an upper bound: a margin certificate built on it is sound, only small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from robustlab.certify.operator_norm import batchnorm_scale, operator_norm, spectral_norm
from robustlab.errors import ConfigError
from robustlab.models.base import ClassifierHead, FeatureClassifier
from robustlab.models.inference import model_context, model_device
from robustlab.models.layers import BasicBlock, Normalize, PreActBlock, SqueezeExcite

ONE_LIPSCHITZ = (nn.ReLU, nn.Identity, nn.Flatten, nn.Dropout)
BN = nn.modules.batchnorm._BatchNorm


@dataclass
class LipschitzBound:
    """The network bound and the per-layer factors it is the product (and sum) of."""

    bound: float
    layers: list[tuple[str, float]] = field(default_factory=list)

    def __float__(self) -> float:
        return self.bound


class _Walk:
    """Walks a network in forward order, multiplying bounds and carrying the activation of the
    input box's center (``ref``) and the radius around it that the box maps into."""

    def __init__(self, ref: torch.Tensor, radius: float, iters: int, tol: float, prefix: str):
        self.ref, self.radius, self.iters, self.tol = ref, radius, iters, tol
        self.prefix, self.bound, self.layers = prefix, 1.0, []

    def child(self, name: str) -> _Walk:
        prefix = f"{self.prefix}{name}." if name else self.prefix
        return _Walk(self.ref, self.radius, self.iters, self.tol, prefix)

    def record(self, name: str, factor: float, output: torch.Tensor) -> None:
        self.bound *= factor
        self.radius *= factor
        self.ref = output
        self.layers.append((f"{self.prefix}{name}", factor))

    def adopt(self, name: str, factor: float, output: torch.Tensor, parts: Sequence[_Walk]) -> None:
        for part in parts:
            self.layers.extend(part.layers)
        self.record(name, factor, output)

    def sequence(self, named: Sequence[tuple[str, nn.Module]]) -> _Walk:
        i = 0
        while i < len(named):
            name, module = named[i]
            after = named[i + 1][1] if i + 1 < len(named) else None
            if isinstance(module, (nn.Conv2d, nn.Linear)) and isinstance(after, BN):
                factor = operator_norm(
                    module, self.ref.shape[1:], iters=self.iters, tol=self.tol, bn=after
                )
                self.record(f"{name}+bn", factor, after(module(self.ref)))
                i += 2
                continue
            self.module(name, module)
            i += 1
        return self

    def module(self, name: str, module: nn.Module) -> None:
        if isinstance(module, FeatureClassifier):
            parts = [("normalize", module.normalize), ("stem", module.stem)]
            parts += [(f"stages.{i}", s) for i, s in enumerate(module.stages)]
            self.sequence(parts + [("final_act", module.final_act), ("head", module.head)])
        elif isinstance(module, nn.Sequential):
            self.adopt_sequence(name, list(module.named_children()))
        elif isinstance(module, ClassifierHead):
            self.sequence([("pool", module.pool), ("flatten", nn.Flatten()), ("fc", module.fc)])
        elif isinstance(module, BasicBlock):
            self._basic_block(name, module)
        elif isinstance(module, PreActBlock):
            self._preact_block(name, module)
        else:
            self.record(name, self._primitive(module), module(self.ref))

    def adopt_sequence(self, name: str, named: list[tuple[str, nn.Module]]) -> None:
        part = self.child(name).sequence(named)
        self.layers.extend(part.layers)
        self.bound *= part.bound
        self.radius, self.ref = part.radius, part.ref

    def _primitive(self, module: nn.Module) -> float:
        shape = self.ref.shape[1:]
        if isinstance(module, ONE_LIPSCHITZ):
            return 1.0
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            return operator_norm(module, shape, iters=self.iters, tol=self.tol)
        if isinstance(module, BN):
            return float(batchnorm_scale(module).abs().max())
        if isinstance(module, Normalize):
            return float(module.std.detach().double().reciprocal().max())
        if isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return spectral_norm(
                module, shape, iters=self.iters, tol=self.tol, device=self.ref.device
            )
        if isinstance(module, nn.MaxPool2d):
            return _max_pool_bound(module)
        if isinstance(module, SqueezeExcite):
            return self._squeeze_excite(module)
        raise ConfigError(
            f"lipschitz_bound has no rule for {type(module).__name__}; supported: Conv2d, Linear, "
            "BatchNorm, ReLU, pooling, Normalize, Sequential, ResNet blocks, SqueezeExcite"
        )

    def _squeeze_excite(self, se: SqueezeExcite) -> float:
        _, channels, height, width = self.ref.shape
        w1 = operator_norm(se.fc1, (channels,), iters=self.iters, tol=self.tol)
        w2 = operator_norm(se.fc2, (se.hidden,), iters=self.iters, tol=self.tol)
        largest = float(self.ref.flatten(2).norm(dim=2).max()) + self.radius
        return 1.0 + largest * w1 * w2 / (4.0 * math.sqrt(height * width))

    def _basic_block(self, name: str, block: BasicBlock) -> None:
        steps = [("conv1", block.conv1), ("bn1", block.bn1), ("relu", block.relu)]
        steps += [("conv2", block.conv2), ("bn2", block.bn2)]
        steps += [("se", block.se)] if block.se is not None else []
        branch = self.child(name).sequence(steps)
        short = self.child(name).sequence([("shortcut", block.shortcut)])
        self.adopt(name, branch.bound + short.bound, block(self.ref), [branch, short])

    def _preact_block(self, name: str, block: PreActBlock) -> None:
        pre = self.child(name).sequence([("bn1", block.bn1), ("relu", block.relu)])
        steps = [("conv1", block.conv1), ("bn2", block.bn2), ("relu2", block.relu)]
        steps += [("conv2", block.conv2)] + ([("se", block.se)] if block.se is not None else [])
        branch = pre.child("").sequence(steps)
        if block.shortcut is None:  # identity on x itself, not on the pre-activation
            factor = pre.bound * branch.bound + 1.0
        else:
            short = pre.child("").sequence([("shortcut", block.shortcut)])
            factor = pre.bound * (branch.bound + short.bound)
            branch.layers.extend(short.layers)
        self.adopt(name, factor, block(self.ref), [pre, branch])


def _max_pool_bound(pool: nn.MaxPool2d) -> float:
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    dilation = _pair(pool.dilation)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    return math.sqrt(math.prod(math.ceil(e / s) for e, s in zip(extent, stride, strict=True)))


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def lipschitz_bound(
    model: nn.Module, input_shape: Sequence[int], iters: int = 500, tol: float = 1e-7
) -> LipschitzBound:
    """An upper bound on the L2 Lipschitz constant of ``model`` (pixels in [0, 1] -> logits) on
    inputs of ``input_shape`` ``(C, H, W)``, and the factor of every layer (eval mode: BatchNorm
    uses its running statistics). See the module docstring for each rule."""
    shape = tuple(int(s) for s in input_shape)
    center = torch.full((1, *shape), 0.5, device=model_device(model))
    radius = 0.5 * math.sqrt(math.prod(shape))  # every point of [0, 1]^d is this close to it
    walk = _Walk(center, radius, iters, tol, "")
    with model_context(model, "eval"), torch.no_grad():
        walk.module("model", model)
    return LipschitzBound(walk.bound, walk.layers)


@torch.no_grad()
def margin_certificate(
    model: nn.Module,
    images: torch.Tensor,
    lipschitz: float,
    labels: torch.Tensor | None = None,
    *,
    batch_size: int = 256,
) -> torch.Tensor:
    """Per example the certified L2 radius ``margin / (sqrt(2) L)`` (Tsuzuku et al. 2018).

    ``margin = z_c - max_{j != c} z_j`` for ``c`` the label (0 radius where the model is wrong)
    or, without labels, the predicted class. Returns a CPU float64 tensor (N,).
    """
    if not lipschitz > 0:
        raise ConfigError(f"the Lipschitz bound must be > 0, got {lipschitz!r}")
    device = model_device(model)
    margins = []
    with model_context(model, "eval"):
        for start in range(0, len(images), batch_size):
            logits = model(images[start : start + batch_size].to(device)).double()
            target = logits.argmax(1) if labels is None else labels[start : start + batch_size]
            target = target.to(device)
            own = logits.gather(1, target[:, None])[:, 0]
            others = logits.scatter(1, target[:, None], float("-inf")).amax(dim=1)
            margins.append((own - others).clamp(min=0).cpu())
    margin = torch.cat(margins) if margins else torch.zeros(0, dtype=torch.float64)
    return margin / (math.sqrt(2.0) * float(lipschitz))
