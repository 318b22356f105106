"""The one-call evaluation of any model and its card: numbers, checks, files, the command line's
closing table, and short reprs."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest
import torch
from torch import nn

from robustlab.app.card_stage import publish_card
from robustlab.evaluation import EvaluationCard, evaluate, evaluate_robustness, wilson_interval
from robustlab.tracking.wandb_logger import WandbLogger
from tests.attack_fixtures import digits_split, fit_briefly

GRID = [0.05, 0.1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is 20x faster than two fighting on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@lru_cache(maxsize=1)
def _external() -> nn.Sequential:
    """A plain nn.Sequential that robustlab never saw: a linear classifier of 8x8 digits."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    train_x, train_y, _, _ = digits_split()
    return fit_briefly(model, train_x, train_y, epochs=10)


def _test_set(n: int = 40):
    _, _, x, y = digits_split()
    return x[:n], y[:n]


@lru_cache(maxsize=1)
def _card() -> EvaluationCard:
    x, y = _test_set()
    return evaluate(_external(), x, y, GRID, suite="fast", data="digits (test, 40)")


def test_evaluate_any_model_returns_its_worst_case_with_intervals():
    card = _card()
    x, y = _test_set()
    with torch.no_grad():
        clean = int((_external()(x).argmax(1) == y).sum()) / 40
    assert card.clean_accuracy == clean and card.n == 40
    assert list(card.worst_case) == ["0.05", "0.1"]
    accuracies = list(card.worst_case.values())
    # the linear model keeps survivors at both radii (0.925 clean, 0.8 / 0.525 robust when
    # measured), so each strict inequality below can fail: an attack that broke nothing, or
    # one that broke everything, would not pass for a working evaluation
    assert clean > accuracies[0] > accuracies[1] > 0
    for key, accuracy in card.worst_case.items():
        assert card.ci[key] == wilson_interval(round(accuracy * 40), 40)
    # every example that fell was broken by a named attack at some eps, counted once
    broken = sum(sum(c.values()) for c in card.first_broken_by.values())
    assert broken == round((clean - accuracies[-1]) * 40)


def test_a_healthy_linear_model_passes_every_check():
    card = _card()
    assert set(card.checks) >= {
        "stochastic_forward",
        "probability_outputs",
        "zero_gradients",
        "gradient_free_breaks",
        "large_eps",
        "incomplete_optimization",
    }
    assert card.warnings == [], {k: c.detail for k, c in card.checks.items()}
    assert card.trust.startswith("An upper bound")


def test_a_softmax_model_is_flagged_and_not_trusted():
    x, y = _test_set(24)
    softmax = nn.Sequential(_external(), nn.Softmax(dim=1))
    card = evaluate(softmax, x, y, [0.1], suite="fast")
    assert card.checks["probability_outputs"].status == "warn"
    assert "probability_outputs" in card.trust and card.trust.startswith("Do not trust")


def test_card_results_markdown_and_files(tmp_path):
    card = _card()
    results = card.to_results()
    assert results["robust_accuracy"]["worst_case"] == card.worst_case
    assert results["checks"]["large_eps"]["status"] in ("pass", "warn")
    json.dumps(results)
    text = card.to_markdown()
    for section in ("Threat model", "Accuracy", "first broke", "Cost", "Checks", "Trust"):
        assert section in text
    assert "norm Linf, eps 0.05, 0.1; data digits (test, 40), n = 40" in text
    md, js = card.save(tmp_path)
    saved = json.loads(js.read_text())
    assert md.read_text().startswith("# Evaluation card")
    assert saved["threat_model"]["n"] == 40 and saved["trust"] == card.trust
    assert saved["cost"]["apgd_ce"]["grad_evals"] > 0


def test_reprs_are_short_summaries():
    card = _card()
    text = repr(card)
    assert "| clean |" in text and "tensor(" not in text and len(text.splitlines()) < 12
    x, y = _test_set(16)
    report = evaluate_robustness(_external(), x, y, {}, [0.1], suite="fast", large_eps=None)
    for obj in (report, report.worst_case):
        assert "tensor(" not in repr(obj) and len(repr(obj)) < 400
    assert "0.1: " in repr(report.worst_case)
    assert set(report.to_results()["checks"]) >= {"stochastic_forward", "gradient_free_breaks"}


def test_the_job_card_is_written_logged_and_printed(tmp_path, capsys):
    x, y = _test_set(16)
    report = evaluate_robustness(_external(), x, y, {}, [0.1], suite="fast", large_eps=None)
    payload = report.to_results() | {"dataset": "digits", "timing_s": {"evaluate": 1.5}}
    written = publish_card(payload, tmp_path, WandbLogger("p", {}, mode="disabled"))
    assert [p.name for p in written] == ["evaluation_card.md", "evaluation_card.json"]
    out = capsys.readouterr().out
    accuracy = payload["robust_accuracy"]["worst_case"]["0.1"]
    assert f"| 0.1 | {accuracy:.4f} |" in out and "| clean |" in out
    assert json.loads(written[1].read_text())["cost"]["total_seconds"] == 1.5
    assert publish_card({"robust_accuracy": {}}, tmp_path / "none", None) == []


def test_eval_inference_noise_evaluates_the_model_with_its_noise_on(tmp_path):
    from robustlab.app.builders import StageInputs
    from robustlab.app.evaluation_stage import evaluate_stage
    from tests.app_helpers import compose_tiny

    noise = ("eval.inference_noise=0.05", "eval.eot_iter=2", "eval.draws=3", "eval.large_eps=null")
    cfg = compose_tiny(tmp_path, *noise)
    x, y = _test_set(16)
    inputs = StageInputs(_external(), None, (x, y), 0, 16)
    results = evaluate_stage(cfg.eval, inputs).to_results()
    # randomized, and handled: EOT gradients and a majority vote both ran
    assert results["checks"]["stochastic_forward"]["status"] == "pass"
    assert "randomized" in results["checks"]["stochastic_forward"]["detail"]
    assert results["worst_case"]["eot"] == {"eot_iter": 2, "draws": 3}
    assert results["attack_schedule"]["pgd"] == "full"  # judged eps by eps, not per step
    card = EvaluationCard.from_results(results)
    assert card.draws == 3 and "majority over 3 draws" in card.to_markdown()


def test_the_card_goes_to_wandb_as_tables(tmp_path, monkeypatch):
    from tests.test_wandb_logger import transaction_log

    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger("robustlab-test", {}, mode="offline", directory=tmp_path)
    logger.log_card(_card().to_json())
    logger.finish(0)
    (run,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    keys = (b"evaluation_card", b"evaluation_checks", b"evaluation_card/trust")
    data = transaction_log(run, keys)
    assert [key for key in keys if key not in data] == []


def test_a_model_with_too_few_classes_for_the_suite_is_one_clear_error():
    from robustlab.errors import InputError

    x, _ = _test_set(8)
    two = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(InputError, match="at least 4 classes"):
        evaluate(two, x, torch.zeros(8, dtype=torch.long), [0.1])
