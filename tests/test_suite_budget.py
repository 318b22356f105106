"""The standard suite's budget: sampled full budgets, their escalation and their bound."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.evaluation import resume_state, suite_budget, suite_waves, worst_case
from robustlab.evaluation.checks import gradient_free_breaks
from robustlab.evaluation.suite_budget import Stage, keyed_sample, upper_bound

GRID = [0.02, 0.05, 0.1]
# The standard plan at toy budgets: a sample of 6 survivors gets the full budgets.
TOY = (
    Stage("apgd_ce", "apgd_ce", 5),
    Stage("apgd_t", "apgd_t", 5, 1),
    Stage("apgd_t_full", "apgd_t", 5, 3, sample=6, reduced=1),
    Stage("square", "square", 20),
    Stage("square_full", "square", 60, sample=6, reduced=20, trigger="square"),
)


class Interrupted(Exception):
    """Stands for a kill: raised right after the state was written."""


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


class Quantised(nn.Module):
    """Inputs rounded to 3 grey levels: gradients vanish, Square still finds breaks."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 2) / 2)


@pytest.fixture()
def toy_plan(monkeypatch):
    monkeypatch.setitem(suite_budget.PLANS, "standard", TOY)


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(1)
    images = torch.rand(40, 1, 8, 8)
    labels = _model()(images).argmax(1)
    return images, labels


def _outcome(result) -> dict:
    return {
        "broken_eps": result.broken_eps.tolist(),
        "broken_by": result.broken_by,
        "budget": result.budget,
    }


def test_the_bound_is_clopper_pearson():
    assert upper_bound(0, 64) == pytest.approx(1 - 0.05 ** (1 / 64))
    assert upper_bound(0, 128) == pytest.approx(0.0231, abs=1e-4)
    assert upper_bound(1, 64) > upper_bound(0, 64)


def test_the_sample_depends_on_the_seed_and_ids_alone():
    ids = torch.arange(100, 200)
    candidates = torch.rand(100, generator=torch.Generator().manual_seed(0)) < 0.7
    sample, total = keyed_sample(candidates, ids, seed=3, stage="square_full", size=16)
    assert total == int(candidates.sum()) and int(sample.sum()) == 16
    assert not (sample & ~candidates).any()
    order = torch.randperm(100, generator=torch.Generator().manual_seed(1))
    shuffled, _ = keyed_sample(candidates[order], ids[order], seed=3, stage="square_full", size=16)
    assert set(ids[order][shuffled].tolist()) == set(ids[sample].tolist())
    other, _ = keyed_sample(candidates, ids, seed=4, stage="square_full", size=16)
    assert not torch.equal(other, sample)


def test_the_reference_suite_runs_every_attack_on_every_survivor(data):
    result = worst_case(_model(), *data, GRID, suite="reference", batch_size=16)
    assert set(result.attack_cost) == {"apgd_ce", "apgd_t", "square"} and not result.budget
    assert "budget" not in gradient_free_breaks(result).detail


def test_a_sample_without_breaks_states_its_bound(data, toy_plan):
    result = worst_case(_model(), *data, GRID, suite="standard", batch_size=16)
    record = result.budget["square_full"]
    assert record["sampled"] == 6 and record["survivors"] > 6
    assert not record["escalated"] and record["sample_breaks"] == 0
    assert record["bound"] == pytest.approx(upper_bound(0, 6))
    assert "square_full_rest" not in result.attack_cost
    detail = gradient_free_breaks(result).detail
    assert "Square at 60 queries ran on a random 6 of" in detail and "Clopper-Pearson" in detail
    assert result.to_results()["worst_case"]["budget"]["square_full"] == record


def test_a_break_the_reduced_square_found_sends_the_full_one_to_every_survivor(data, toy_plan):
    masked = Quantised(_model()).eval()
    result = worst_case(masked, *data, [0.3], suite="standard", batch_size=16)
    record = result.budget["square_full"]
    assert record["trigger_breaks"] > 0 and record["escalated"] and record["all_survivors"]
    assert result.attack_cost["square_full_rest"]["forward_evals"] > 0
    assert "ran on all" in gradient_free_breaks(result).detail


def test_few_survivors_get_the_full_budgets_without_the_reduced_ones(data, monkeypatch):
    """With no more survivors than the sample, the reduced stages are left out: the full
    budgets run on every survivor."""
    skipping = (
        Stage("apgd_ce", "apgd_ce", 5),
        Stage("apgd_t", "apgd_t", 5, 1, skip_at_most=1000),
        Stage("apgd_t_full", "apgd_t", 5, 3, sample=1000, reduced=1),
        Stage("square", "square", 20, skip_at_most=1000),
        Stage("square_full", "square", 60, sample=1000, reduced=20, trigger="square"),
    )
    monkeypatch.setitem(suite_budget.PLANS, "standard", skipping)
    result = worst_case(_model(), *data, GRID, suite="standard", batch_size=16)
    assert set(result.attack_cost) == {"apgd_ce", "apgd_t_full", "square_full"}
    assert all(record["all_survivors"] for record in result.budget.values())
    assert "ran on all" in gradient_free_breaks(result).detail


def test_a_kill_in_a_sampled_stage_resumes_to_the_uninterrupted_result(
    data, toy_plan, tmp_path, monkeypatch
):
    reference = _outcome(worst_case(_model(), *data, GRID, suite="standard", batch_size=4))
    monkeypatch.setattr(resume_state, "SAVE_EVERY_S", 0.0)
    original, calls = suite_waves.SuiteProgress.batch_done, []

    def kill_in_the_sample(self, rows, fooled):
        original(self, rows, fooled)
        calls.append(self.wave.attack)
        if calls.count("square_full") == 1:
            raise Interrupted

    path = tmp_path / "state.safetensors"
    monkeypatch.setattr(suite_waves.SuiteProgress, "batch_done", kill_in_the_sample)
    with pytest.raises(Interrupted):
        worst_case(_model(), *data, GRID, suite="standard", batch_size=4, state_path=path)
    monkeypatch.setattr(suite_waves.SuiteProgress, "batch_done", original)
    resumed = worst_case(_model(), *data, GRID, suite="standard", batch_size=4, state_path=path)
    assert _outcome(resumed) == reference


def test_a_shard_samples_the_whole_sets_sample(monkeypatch):
    """A process of two samples its part of the whole set's sample: the gather hands it the
    other process's candidate keys (tests/test_eval_sharded.py runs two real processes)."""
    all_ids, mine, theirs = torch.arange(40), torch.arange(0, 40, 2), torch.arange(1, 40, 2)
    everyone = torch.ones(40, dtype=torch.bool)
    whole, _ = keyed_sample(everyone, all_ids, seed=0, stage="square_full", size=6)
    _, _ = keyed_sample(everyone[theirs], theirs, seed=0, stage="square_full", size=6)
    their_keys = []
    monkeypatch.setattr(
        suite_budget, "gather_objects", lambda keys: their_keys.append(keys) or [keys]
    )
    keyed_sample(everyone[theirs], theirs, seed=0, stage="square_full", size=6)
    monkeypatch.setattr(suite_budget, "gather_objects", lambda keys: [keys, their_keys[0]])
    part, total = keyed_sample(everyone[mine], mine, seed=0, stage="square_full", size=6)
    assert total == 40
    assert set(mine[part].tolist()) == set(all_ids[whole].tolist()) & set(mine.tolist())
