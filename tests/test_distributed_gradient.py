"""One training step on 1, 2 and 3 processes: the same gradient for any split of the batch.

The splits are uneven (7 rows on 2 ranks: 4 and 3) and smaller than the group (2 rows on 3
ranks: 1, 1 and none), so the loss weighting of `Shard` decides the result: without it the
averaged gradient is off by several percent of its norm (a third with the empty rank), far
above the float rounding that separates process counts.
"""

from __future__ import annotations

import pytest
import torch

from robustlab.data import dataset_info, load_dataset
from robustlab.models import create_model
from robustlab.training import ddp
from robustlab.training.ddp import Shard, shard_batch, wrap_model
from robustlab.training.objectives import AdversarialTraining
from robustlab.training.objectives.trades import TRADES
from tests.distributed_workers import run_ranks

pytestmark = pytest.mark.filterwarnings("ignore")

OBJECTIVES = {
    "pgd_at": lambda: AdversarialTraining(eps=0.1, alpha=0.05, steps=2),
    "trades": lambda: TRADES(eps=0.1, alpha=0.05, steps=2, beta=6.0),
}


def _step_gradient(rows: int, objective: str) -> list[float] | None:
    """The gradient of one step on the first ``rows`` digits, as the fit loop takes it (rank
    0's averaged gradient; None on the other ranks)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    info = dataset_info("digits")
    model = create_model(
        "resnet20", info.num_classes, info.in_channels, mean=info.mean, std=info.std
    )
    images, labels = load_dataset("digits", split="train")
    trained, unwrap = wrap_model(model.train())
    torch.manual_seed(1)  # the step's random starts, the same on every rank
    shard = shard_batch(images[:rows], labels[:rows])
    with shard.active() as (x, y):
        step = OBJECTIVES[objective]()(trained, x, y)
    shard.weighted(step.loss).backward()
    unwrap()
    gradient = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.isfinite(gradient).all()
    return gradient.double().tolist() if ddp.rank() == 0 else None


def _step_gradients(cases: list[tuple[int, str]]) -> list[list[float] | None]:
    """`_step_gradient` of each (rows, objective) case, in one process group."""
    return [_step_gradient(rows, objective) for rows, objective in cases]


# one process group per process count: starting processes costs more than the steps
CASES = {2: [(7, "pgd_at")], 3: [(2, "pgd_at"), (5, "trades")]}


@pytest.mark.parametrize("processes", sorted(CASES))
def test_one_step_gradient_is_the_one_process_gradient(processes):
    cases = CASES[processes]
    results = run_ranks(processes, _step_gradients, cases)[0]
    for (rows, objective), result in zip(cases, results, strict=True):
        one = torch.tensor(_step_gradient(rows, objective))
        gap = float((torch.tensor(result) - one).norm() / one.norm())
        assert gap < 1e-4, (rows, objective, gap)


@pytest.mark.parametrize(("rows", "processes"), [(7, 2), (2, 3), (5, 3), (64, 3), (1, 2)])
def test_shard_weights_add_up_to_the_global_batch_mean(monkeypatch, rows, processes):
    per_example = torch.linspace(0.5, 3.0, rows, dtype=torch.float64)
    images, labels = torch.zeros(rows, 1, 2, 2), torch.arange(rows)
    monkeypatch.setattr(ddp, "world_size", lambda: processes)
    shards = []
    for r in range(processes):
        monkeypatch.setattr(ddp, "rank", lambda r=r: r)
        shards.append(shard_batch(images, labels))
    # every row in exactly one shard, in order; the first ranks take the extra rows
    assert [i for s in shards for i in s.rows] == list(range(rows))
    sizes = [len(s.rows) for s in shards]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1
    for shard in shards:
        assert shard.weight == pytest.approx(len(shard.rows) * processes / rows)
        assert shard.empty == (len(shard.rows) == 0)
    # DDP averages the ranks' weighted mean losses: that must be the global batch mean
    weighted = []
    for shard in shards:
        with shard.active() as (_, mine):
            losses = per_example[mine]
            weighted.append(shard.weighted(losses.mean()) if len(mine) else torch.zeros(()))
    assert float(sum(weighted) / processes) == pytest.approx(float(per_example.mean()))


def test_a_single_process_shard_is_the_whole_batch_unweighted():
    images, labels = torch.rand(3, 1, 2, 2), torch.arange(3)
    shard = shard_batch(images, labels)
    assert shard == Shard(images, labels) and not shard.empty
    loss = torch.tensor(2.5)
    assert shard.weighted(loss) is loss
