"""BatchNorm over the global batch when it is split across ranks.

torch's ``SyncBatchNorm`` runs on CUDA only (its kernels raise on CPU tensors).
`GlobalBatchNorm` does the same on the CPU with the same communication: ONE all-gather per
layer in the forward pass (each rank's float32 mean, biased variance and row count in one
tensor) and ONE all-reduce in the backward pass (the per-channel sums of ``dy`` and
``dy * (x - mean)`` in one tensor). The ranks' statistics are combined in float64 (Chan et
al.'s parallel variance), so the layer normalises with the mean and variance of the whole
global batch and its backward pass is that of one BatchNorm over the global batch, up to
float32 rounding. A rank that holds no rows of a batch still joins both collectives, with a
count of zero, and returns an empty output: no rank waits for it in vain.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from robustlab.errors import InputError

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _local_statistics(input: torch.Tensor) -> torch.Tensor:
    """This rank's ``[mean (C), biased var (C), count (1)]``, float32 (float64 for a float64
    model); zeros for no rows."""
    channels = input.shape[1]
    count = input.numel() // channels
    wire = torch.float64 if input.dtype == torch.float64 else torch.float32
    if count == 0:
        return input.new_zeros(2 * channels + 1, dtype=wire)
    # the CPU BatchNorm kernel's own statistics pass (float64 accumulation, biased variance)
    mean, var = torch.batch_norm_update_stats(input, None, None, 0.0)
    return torch.cat([mean, var, mean.new_full((1,), count)]).to(wire)


def _combine(gathered: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Global mean, biased variance (float64) and row count from every rank's statistics."""
    wide = gathered.double()
    means, variances = wide[:, :channels], wide[:, channels : 2 * channels]
    counts = wide[:, -1:]
    total = float(counts.sum())
    mean = (counts * means).sum(0) / total
    # the parallel variance: within-rank spread plus the spread of the rank means
    var = (counts * (variances + (means - mean) ** 2)).sum(0) / total
    return mean, var, total


def _channel_view(vector: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    return vector.view((1, -1) + (1,) * (input.dim() - 2))


class _GlobalBatchNormFunction(torch.autograd.Function):
    """Training-mode BatchNorm with the statistics of every rank's rows (default group)."""

    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, eps, momentum):
        input = input.contiguous()
        channels = input.shape[1]
        local = _local_statistics(input)
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local)  # counts differ between ranks: gather, not all-reduce
        mean64, var64, total = _combine(torch.stack(parts), channels)
        mean, var = mean64.to(input.dtype), var64.to(input.dtype)
        if running_mean is not None:
            unbiased = var64 * (total / max(total - 1.0, 1.0))
            running_mean.mul_(1 - momentum).add_(mean64.to(running_mean.dtype), alpha=momentum)
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
        invstd = torch.rsqrt(var64 + eps).to(input.dtype)
        ctx.save_for_backward(input, weight, mean, invstd)
        ctx.total = total
        if input.numel() == 0:
            return torch.empty_like(input)
        # eval-mode BatchNorm with the global statistics: the kernel's fused scale and shift
        return torch.batch_norm(input, weight, bias, mean, var, False, 0.0, eps, False)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, mean, invstd = ctx.saved_tensors
        channels = input.shape[1]
        grad_output = grad_output.contiguous()
        if input.numel():
            # one fused pass: with invstd = 1 the kernel's weight gradient is sum(dy * (x - mean))
            ones = torch.ones_like(invstd)
            mask = [False, True, True]
            _, sum_dy_xmu, sum_dy = torch.ops.aten.native_batch_norm_backward(
                grad_output, input, None, None, None, mean, ones, True, 0.0, mask
            )
        else:
            sum_dy_xmu = sum_dy = input.new_zeros(channels)
        grad_weight = sum_dy_xmu * invstd if ctx.needs_input_grad[1] else None
        grad_bias = sum_dy.clone() if ctx.needs_input_grad[2] else None
        grad_input = None
        if ctx.needs_input_grad[0]:
            # the same on every rank (one graph), so every rank joins this all-reduce
            sums = torch.cat([sum_dy, sum_dy_xmu])
            dist.all_reduce(sums)
            sum_dy, sum_dy_xmu = sums[:channels], sums[channels:]
            grad_input = _input_gradient(ctx, grad_output, sum_dy, sum_dy_xmu)
        # the parameters' gradients stay per rank: DDP sums them with the rest
        return grad_input, grad_weight, grad_bias, None, None, None, None


def _input_gradient(ctx, grad_output, sum_dy, sum_dy_xmu) -> torch.Tensor:
    """``(dy - mean(dy) - (x - mean) * invstd^2 * mean(dy * (x - mean))) * invstd * weight``
    with the global means, in the order BatchNorm's CPU kernel computes it."""
    input, weight, mean, invstd = ctx.saved_tensors
    if input.numel() == 0:
        return torch.empty_like(input)
    scale = invstd if weight is None else invstd * weight
    k = sum_dy_xmu * invstd * invstd / ctx.total
    # (x - mean) first: x * k - mean * k would cancel when the mean is large against the spread
    grad = input - _channel_view(mean, input)
    grad.mul_(_channel_view(-k, input)).add_(grad_output).sub_(
        _channel_view(sum_dy / ctx.total, input)
    )
    return grad.mul_(_channel_view(scale, input))


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm (any input of shape (N, C, ...)) whose training statistics are those of the
    global batch across every rank; eval mode, or no process group, is plain BatchNorm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise InputError(f"GlobalBatchNorm expects (N, C, ...) input, got {input.dim()}D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        self._check_input_dim(input)
        tracked = self.track_running_stats and self.running_mean is not None
        factor = 0.0
        if tracked:
            self.num_batches_tracked.add_(1)
            # momentum None is a cumulative average, as in BatchNorm
            factor = self.momentum
            if factor is None:
                factor = 1.0 / float(self.num_batches_tracked)
        return _GlobalBatchNormFunction.apply(
            input,
            self.weight,
            self.bias,
            self.running_mean if tracked else None,
            self.running_var if tracked else None,
            self.eps,
            factor,
        )


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
    returns each replaced module's name and original class, for `restore_batchnorm`."""
    replaced: dict[str, type[nn.Module]] = {}
    for name, module in list(model.named_modules()):
        if name and type(module) in BATCHNORMS:
            replaced[name] = type(module)
            model.set_submodule(name, _rebuilt(module, cls))
    return replaced


def restore_batchnorm(model: nn.Module, replaced: dict[str, type[nn.Module]]) -> None:
    """Put back the original BatchNorm classes that `swap_batchnorm` replaced."""
    for name, cls in replaced.items():
        model.set_submodule(name, _rebuilt(model.get_submodule(name), cls))


def synchronized_batchnorm(device: torch.device) -> type[nn.Module]:
    """torch's SyncBatchNorm on CUDA (fused kernels), `GlobalBatchNorm` elsewhere."""
    return nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm
