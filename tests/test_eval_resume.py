"""Resumable evaluation: an interrupted evaluation continues from its state file to the
uninterrupted result; a state file of another model or other settings is refused."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from torch import nn

from robustlab.attacks import AttackSpec
from robustlab.attacks.apgd import APGD
from robustlab.attacks.row_random import example_seeds
from robustlab.attacks.square import Square
from robustlab.errors import ConfigError
from robustlab.evaluation import evaluate_robustness, resume_state, suite_waves

GRID = [0.02, 0.05, 0.1]
ATTACKS = {"pgd": AttackSpec("PGD", {"steps": 5}), "fgsm": AttackSpec("FGSM", {})}


class Interrupted(Exception):
    """Stands for a kill: raised right after the state was written."""


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


@pytest.fixture(scope="module")
def data():
    torch.manual_seed(1)
    images = torch.rand(40, 1, 8, 8)
    labels = _model()(images).argmax(1)
    labels[:4] = (labels[:4] + 1) % 10  # a few misclassified clean
    return images, labels


def _evaluate(model, data, **kwargs):
    options = {"suite": "fast", "check_gradients": False, "large_eps": None} | kwargs
    return evaluate_robustness(model, *data, ATTACKS, GRID, batch_size=8, **options)


def _outcome(report) -> dict:
    """Everything but timings: accuracies, per-example records, first breakers, evaluations."""
    results = report.to_results()
    cost = results["worst_case"]["attack_cost"]
    evals = {name: c["grad_evals"] + c["forward_evals"] for name, c in cost.items()}
    return {
        "accuracy": results["robust_accuracy"],
        "first": results["worst_case"]["first_broken_by"],
        "broken_eps": report.worst_case.broken_eps.tolist(),
        "broken_by": report.worst_case.broken_by,
        "curves": {k: c.broken_eps.tolist() for k, c in report.curves.items()},
        "evals": evals,
    }


def test_a_kill_mid_wave_resumes_to_the_uninterrupted_result(data, tmp_path, monkeypatch, caplog):
    reference = _outcome(_evaluate(_model(), data))
    monkeypatch.setattr(resume_state, "SAVE_EVERY_S", 0.0)  # a save after every batch
    original, calls = suite_waves.SuiteProgress.batch_done, []

    def kill_after_some_batches(self, rows, fooled):
        original(self, rows, fooled)  # the state is on disk when the "kill" comes
        calls.append(self.wave.attack)
        if self.wave.attack == "apgd_t" and calls.count("apgd_t") == 2:
            raise Interrupted

    path = tmp_path / "eval_state.safetensors"
    monkeypatch.setattr(suite_waves.SuiteProgress, "batch_done", kill_after_some_batches)
    with pytest.raises(Interrupted):
        _evaluate(_model(), data, state_path=path)
    monkeypatch.setattr(suite_waves.SuiteProgress, "batch_done", original)
    with caplog.at_level(logging.INFO, logger="robustlab.evaluation.resume_state"):
        resumed = _evaluate(_model(), data, state_path=path)
    lines = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(lines) == 1 and str(path) in lines[0]
    done = re.search(r"apgd_ce finished, apgd_t wave 1: (\d+) of (\d+) examples done", lines[0])
    assert done and 0 < int(done[1]) < int(done[2])
    outcome = _outcome(resumed)
    # the APGD-T evaluations of the batches before the kill are not counted again
    assert outcome.pop("evals")["apgd_ce"] == reference.pop("evals")["apgd_ce"]
    assert outcome == reference


def test_a_foreign_state_is_refused_and_resume_false_starts_afresh(data, tmp_path, caplog):
    path = tmp_path / "state.safetensors"
    fast = {"suite": "none"}
    first = _outcome(_evaluate(_model(), data, state_path=path, **fast))
    with pytest.raises(ConfigError, match="model weights differ") as err:
        _evaluate(_model(seed=5), data, state_path=path, **fast)
    assert "\n" not in str(err.value) and "eval.resume=false" in str(err.value)
    with pytest.raises(ConfigError, match="evaluation settings differ"):
        _evaluate(_model(), data, state_path=path, suite="none", seed=3)
    with pytest.raises(ConfigError, match="data differ"):
        evaluate_robustness(
            _model(), data[0][:30], data[1][:30], ATTACKS, GRID, batch_size=8, suite="none",
            state_path=path,
        )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="robustlab.evaluation.resume_state"):
        again = _outcome(_evaluate(_model(seed=5), data, state_path=path, resume=False, **fast))
        assert not [r for r in caplog.records if "resuming" in r.getMessage()]
    assert again != first  # another model's numbers, and its state replaced the old one
    assert _outcome(_evaluate(_model(seed=5), data, state_path=path, **fast)) == again


@pytest.mark.parametrize("make", [APGD, Square], ids=["apgd", "square"])
def test_keyed_rows_draw_the_same_in_any_batch(make, data):
    """A row seeded by its example draws the same numbers whatever batch it is in, so a shard
    or the rest of a wave gives it the result the whole set gives it."""
    model, (images, labels) = _model(), data
    seeds = example_seeds(0, torch.arange(len(labels)))
    options = {"steps": 10} if make is APGD else {"n_queries": 50}
    whole = make(model, eps=0.05, seed=seeds, **options)(images, labels)
    part = make(model, eps=0.05, seed=seeds[7:19], **options)(images[7:19], labels[7:19])
    assert torch.equal(whole[7:19], part)
    # an int seed draws per batch: the same rows in another batch start elsewhere
    batch = make(model, eps=0.05, seed=0, **options)(images, labels)
    assert not torch.equal(batch, whole)
