"""Spectral norms of linear layers through the matrix view of convolution.

A convolution is a matrix: with im2col, ``S = W . phi(Z)`` (plus a bias that does not change a
Lipschitz constant), i.e. a sparse, structured (doubly block-Toeplitz) matrix ``A`` of size
(C_out H_out W_out) x (C_in H_in W_in). Its spectral norm ``||A||_2`` is found here by (block)
power iteration on ``A^T A``: ``A v`` is the convolution itself and ``A^T u`` its vector-Jacobian
product (the transposed convolution, with stride, padding, dilation and groups handled by
autograd), so the matrix is never built.

A BatchNorm in eval mode is the per-channel affine map ``y = s_c x + b_c`` with
``s_c = gamma_c / sqrt(var_c + eps)``; after a convolution or linear layer it is folded into the
operator as ``diag(s) A``.

The estimate approaches ``||A||_2`` from below: ``||A Q||_2`` for orthonormal ``Q`` is never
larger than the norm. Run to the relative tolerance ``tol`` it matches an SVD of the explicit
matrix to about that tolerance (checked by the tests), far below the slack of any product bound
built on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from robustlab.errors import ConfigError, InputError

LinearMap = Callable[[torch.Tensor], torch.Tensor]


def batchnorm_scale(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """The per-channel scale ``gamma / sqrt(running_var + eps)`` of an eval-mode BatchNorm."""
    if bn.running_var is None:
        raise ConfigError("BatchNorm without running statistics (track_running_stats=False)")
    scale = torch.rsqrt(bn.running_var.detach().double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    return scale


def spectral_norm(
    apply: LinearMap,
    input_shape: Sequence[int],
    *,
    iters: int = 500,
    tol: float = 1e-7,
    seed: int = 0,
    device: torch.device | str = "cpu",
    block: int = 8,
) -> float:
    """Largest singular value of the linear map ``apply`` on inputs of ``input_shape``.

    ``apply`` must be linear (no bias); its transpose is the autograd vector-Jacobian product.
    Block power iteration: ``block`` vectors ride in the batch dimension, ``V <- A^T A Q`` with
    ``Q`` the orthonormalised ``V``, and the estimate is ``||A Q||_2`` (a lower bound of the norm
    for any orthonormal ``Q``). With one vector, convolutions converge very slowly: their top
    singular values come in near-equal families (neighbouring spatial frequencies); the block
    converges at the rate ``(s_{k+1} / s_1)^2`` instead of ``(s_2 / s_1)^2``. Stops when the
    estimate changes by less than ``tol`` (relative) or after ``iters`` steps; float64.
    """
    size = math.prod(input_shape)
    block = max(1, min(block, size))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    basis = torch.randn(size, block, generator=generator, dtype=torch.float64).to(device)
    estimate = 0.0
    for _ in range(iters):
        q = torch.linalg.qr(basis).Q.T.reshape(block, *input_shape).requires_grad_(True)
        with torch.enable_grad():
            out = apply(q)
            (back,) = torch.autograd.grad(out, q, grad_outputs=out.detach())  # A^T A Q
        value = float(torch.linalg.matrix_norm(out.detach().reshape(block, -1), ord=2))
        if value == 0.0:
            return 0.0
        basis = back.reshape(block, size).T
        if abs(value - estimate) <= tol * value:
            return value
        estimate = value
    return estimate


def _channel_scale(scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y * scale.view(1, -1, *([1] * (y.ndim - 2)))


def layer_map(layer: nn.Module, bn: nn.Module | None = None) -> LinearMap:
    """The bias-free linear map of a Conv2d / Linear / BatchNorm layer (``bn`` folded after it)."""
    if isinstance(layer, nn.modules.batchnorm._BatchNorm) and bn is None:
        alone = batchnorm_scale(layer)
        return lambda x: _channel_scale(alone, x)
    if not isinstance(layer, (nn.Conv2d, nn.Linear)):
        raise ConfigError(
            f"operator_norm supports Conv2d, Linear and BatchNorm (optionally after a Conv2d or "
            f"Linear), got {type(layer).__name__}"
        )
    weight = layer.weight.detach().double()
    scale = batchnorm_scale(bn) if bn is not None else None

    def apply(x: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, nn.Conv2d):
            y = layer._conv_forward(x, weight, None)  # honours padding_mode, groups, dilation
        else:
            y = x @ weight.T
        return y if scale is None else _channel_scale(scale, y)

    return apply


def example_shape(layer: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` without a leading batch axis (the norm of a layer applied to a batch is
    the norm on one example), checked against the layer: ``(C, H, W)`` for a Conv2d with C
    input channels, ``(features,)`` for a Linear."""
    shape = tuple(int(d) for d in input_shape)
    conv = isinstance(layer, nn.Conv2d)
    want = 3 if conv else 1
    if isinstance(layer, nn.Conv2d | nn.Linear) and len(shape) == want + 1:
        shape = shape[1:]  # (N, C, H, W) or (N, features): one example's operator
    channels = getattr(layer, "in_channels" if conv else "in_features", None)
    if isinstance(layer, nn.Conv2d | nn.Linear) and (
        len(shape) != want or shape[0] != channels or min(shape) < 1
    ):
        expected = f"({channels}, H, W)" if conv else f"({channels},)"
        raise InputError(
            f"operator_norm: input_shape {tuple(input_shape)} does not fit "
            f"{type(layer).__name__}: pass {expected}, with or without a batch axis in front"
        )
    return shape


def operator_norm(
    layer: nn.Module,
    input_shape: Sequence[int],
    *,
    iters: int = 500,
    tol: float = 1e-7,
    bn: nn.Module | None = None,
) -> float:
    """Spectral norm of ``layer`` as an operator on inputs of ``input_shape`` (``(C, H, W)`` for
    a convolution, ``(features,)`` for a linear layer; a leading batch axis is dropped).

    ``bn``: a BatchNorm that follows the layer, folded in (``diag(scale) A``). A BatchNorm alone
    has norm ``max |scale|``. For a convolution the value depends on the input size (border
    effects of padding, stride), which is why the shape is required.
    """
    if isinstance(layer, nn.modules.batchnorm._BatchNorm) and bn is None:
        return float(batchnorm_scale(layer).abs().max())
    input_shape = example_shape(layer, input_shape)
    device = layer.weight.device if getattr(layer, "weight", None) is not None else "cpu"
    return spectral_norm(
        layer_map(layer, bn), tuple(input_shape), iters=iters, tol=tol, device=device
    )
