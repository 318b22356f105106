"""BatchNorm over the global batch when it is split across ranks.

torch's ``SyncBatchNorm`` runs on CUDA only (it raises on CPU tensors). :class:`GlobalBatchNorm`
does the same on any device with a differentiable all-reduce (what the collectives of
``torch.distributed.nn`` do; torch now deprecates that module): the per-channel sum and the
sum of squared deviations are summed over the ranks, so the forward pass normalises with the
statistics of the whole global batch and the backward pass carries each rank's share of their
gradient to every rank, exactly as one BatchNorm over the global batch in one process would.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks, differentiable: the gradient of a sum is the sum of the gradients.
    (What ``torch.distributed.nn.functional.all_reduce`` does; torch deprecates that module.)"""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every rank, with a gradient that reaches every rank's input."""
    return _AllReduceSum.apply(tensor)


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm (any input of shape (N, C, ...)) whose training statistics are those of the
    global batch across every rank; eval mode uses the running statistics as usual."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects (N, C, ...) input, got {input.dim()}D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        mean, invstd, var, total = self._global_statistics(input)
        self._update_running(mean.detach().float(), var.detach().float(), total)
        shape = (1, -1) + (1,) * (input.dim() - 2)
        # the gradient flows through (x - mean) * invstd in float64, as BatchNorm's backward
        # computes it: x * scale + shift would cancel sum(g * x) against mean * sum(g)
        out = ((input.double() - mean.view(shape)) * invstd.view(shape)).to(input.dtype)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        # the values are rounded as BatchNorm's CPU kernel rounds them (one scale and one shift
        # per channel, a fused multiply-add), so ReLU masks of values within rounding of zero
        # stay those of one process; the correction is an ulp or so and carries no gradient
        with torch.no_grad():
            correction = self._kernel_rounding(input, mean, invstd, shape) - out
        return out + correction

    def _kernel_rounding(
        self, input: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, shape: tuple
    ) -> torch.Tensor:
        dtype = input.dtype
        scale = invstd.to(dtype)
        shift = -mean.to(dtype) * scale
        if self.affine:
            scale = scale * self.weight
            shift = torch.addcmul(self.bias, -mean.to(dtype), scale)
        # a float64 product of two floats is exact: rounding the float64 sum once is the fma
        return (input.double() * scale.double().view(shape) + shift.double().view(shape)).to(dtype)

    def _global_statistics(
        self, input: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Mean, 1/sqrt(var + eps), biased var (float64) and count over every rank's rows."""
        dims = [0, *range(2, input.dim())]
        shape = (1, -1) + (1,) * (input.dim() - 2)
        # float64 accumulation, as the kernel's: a channel whose mean is large against its
        # spread loses its deviations to float32 rounding otherwise
        wide = input.double()
        count = wide.new_tensor(float(input.numel() // input.shape[1]))
        # one collective for the sums and the count, one for the squared deviations: the
        # two-pass variance is as accurate as BatchNorm's own, E[x^2] - E[x]^2 is not
        sums = all_reduce_sum(torch.cat([wide.sum(dims), count.view(1)]))
        total = sums[-1].detach()
        mean = sums[:-1] / total
        centred = wide - mean.view(shape)
        var = all_reduce_sum((centred * centred).sum(dims)) / total
        return mean, torch.rsqrt(var + self.eps), var, float(total)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, total: float) -> None:
        if not self.track_running_stats or self.running_mean is None:
            return
        self.num_batches_tracked.add_(1)
        factor = self.momentum
        if factor is None:  # a cumulative average, as BatchNorm does with momentum=None
            factor = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (total / max(total - 1.0, 1.0))
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def _rebuilt(module: nn.Module, cls: type[nn.Module]) -> nn.Module:
    # the new module holds the SAME parameter and buffer tensors (as torch's own
    # convert_sync_batchnorm does), so an optimizer built before the swap still updates them
    new = cls(
        module.num_features,
        module.eps,
        module.momentum,
        module.affine,
        module.track_running_stats,
        device="meta",
    )
    for name, param in module.named_parameters(recurse=False):
        setattr(new, name, param)
    for name, buffer in module.named_buffers(recurse=False):
        setattr(new, name, buffer)
    new.train(module.training)
    return new


def swap_batchnorm(model: nn.Module, cls: type[nn.Module]) -> dict[str, type[nn.Module]]:
    """Replace every BatchNorm of ``model`` by ``cls`` (same parameters and buffers) in place;
    returns each replaced module's name and original class, for :func:`restore_batchnorm`."""
    replaced: dict[str, type[nn.Module]] = {}
    for name, module in list(model.named_modules()):
        if name and type(module) in BATCHNORMS:
            replaced[name] = type(module)
            model.set_submodule(name, _rebuilt(module, cls))
    return replaced


def restore_batchnorm(model: nn.Module, replaced: dict[str, type[nn.Module]]) -> None:
    """Put back the original BatchNorm classes that :func:`swap_batchnorm` replaced."""
    for name, cls in replaced.items():
        model.set_submodule(name, _rebuilt(model.get_submodule(name), cls))


def synchronised_batchnorm(device: torch.device) -> type[nn.Module]:
    """torch's SyncBatchNorm on CUDA (fused kernels), :class:`GlobalBatchNorm` elsewhere."""
    return nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm
