"""GlobalBatchNorm on 2 and 3 gloo processes: one BatchNorm over the global batch, one
collective per layer and pass, and a rank without rows that joins them."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from robustlab.distributed import rank, shard_range, world_size
from robustlab.training.sync_batchnorm import GlobalBatchNorm, restore_batchnorm, swap_batchnorm
from tests.distributed_workers import run_ranks

pytestmark = pytest.mark.filterwarnings("ignore")

CHANNELS = 3


def _global_batch(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(rows, CHANNELS, 4, 4, generator=generator)
    # channel 0: a mean far from zero against its spread, where E[x^2] - E[x]^2 would fail
    images[:, 0] = images[:, 0] * 0.05 + 20.0
    upstream = torch.randn(rows, CHANNELS, 4, 4, generator=generator)
    return images, upstream


def _layers() -> nn.Sequential:
    model = nn.Sequential(nn.BatchNorm2d(CHANNELS), nn.BatchNorm2d(CHANNELS))
    with torch.no_grad():
        for layer in model:
            layer.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
            layer.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    return model


def _reference(rows: int) -> dict[str, list]:
    """One process, float64, the whole batch: what every split must give."""
    images, upstream = _global_batch(rows)
    model = _layers().double().train()
    x = images.double().requires_grad_(True)
    out = model(x)
    (out * upstream.double()).sum().backward()
    return _values(model, out, x.grad)


def _values(model: nn.Module, out: torch.Tensor, grad: torch.Tensor) -> dict[str, list]:
    first = model[0]
    return {
        "out": out.detach().double().tolist(),
        "grad": grad.double().tolist(),
        "weight_grad": first.weight.grad.double().tolist(),
        "bias_grad": first.bias.grad.double().tolist(),
        "running_mean": first.running_mean.double().tolist(),
        "running_var": first.running_var.double().tolist(),
    }


def _sync_task(rows: int) -> dict:
    """This rank's share of the batch through two synchronised layers, collectives counted."""
    images, upstream = _global_batch(rows)
    mine = shard_range(rows, rank(), world_size())
    model = _layers().train()
    replaced = swap_batchnorm(model, GlobalBatchNorm)
    calls = {"all_gather": 0, "all_reduce": 0}
    originals = {name: getattr(dist, name) for name in calls}

    def counted(name):
        def call(*args, **kwargs):
            calls[name] += 1
            return originals[name](*args, **kwargs)

        return call

    x = images[mine.start : mine.stop].clone().requires_grad_(True)
    for name in calls:
        setattr(dist, name, counted(name))
    try:
        out = model(x)
        forward = dict(calls)
        (out * upstream[mine.start : mine.stop]).sum().backward()
    finally:
        for name, call in originals.items():
            setattr(dist, name, call)
    # the parameters' gradients are per rank (DDP sums them): sum them here
    for param in model.parameters():
        dist.all_reduce(param.grad)
    restore_batchnorm(model, replaced)
    return {"rows": len(mine), "forward": forward, "total": calls, **_values(model, out, x.grad)}


@pytest.mark.parametrize(("processes", "rows"), [(2, 5), (3, 2)])
def test_global_batchnorm_is_one_batchnorm_over_the_global_batch(processes, rows):
    # 5 rows on 2 ranks: 3 and 2; 2 rows on 3 ranks: 1, 1 and none
    results = run_ranks(processes, _sync_task, rows)
    reference = _reference(rows)
    assert [r["rows"] for r in results] == [
        len(shard_range(rows, r, processes)) for r in range(processes)
    ]
    out = torch.cat([torch.tensor(r["out"]).view(-1, CHANNELS, 4, 4) for r in results])
    grad = torch.cat([torch.tensor(r["grad"]).view(-1, CHANNELS, 4, 4) for r in results])
    expected_out = torch.tensor(reference["out"])
    expected_grad = torch.tensor(reference["grad"])
    assert torch.allclose(out, expected_out, rtol=0, atol=1e-4 * expected_out.abs().max())
    assert torch.allclose(grad, expected_grad, rtol=0, atol=1e-4 * expected_grad.abs().max())
    for result in results:
        for key in ("weight_grad", "bias_grad", "running_mean", "running_var"):
            got, want = torch.tensor(result[key]), torch.tensor(reference[key])
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (key, got, want)
        # one all-gather per layer forward, one all-reduce per layer backward (two layers;
        # the test's own gradient sum adds one all-reduce per parameter: four)
        assert result["forward"] == {"all_gather": 2, "all_reduce": 0}
        assert result["total"] == {"all_gather": 2, "all_reduce": 2}


def test_global_batchnorm_without_a_group_is_batchnorm():
    images, _ = _global_batch(6)
    plain, synced = _layers().train(), _layers().train()
    swap_batchnorm(synced, GlobalBatchNorm)
    assert torch.equal(plain(images), synced(images))
    assert torch.equal(plain[0].running_var, synced[0].running_var)
