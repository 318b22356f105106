"""One judge for every verdict (robustlab.evaluation.judge).

- A judge that never calls a prediction wrong leaves every curve, the suite, the checks and the
  worst case at clean accuracy, though the attacks do fool the model's own forward: no break is
  counted without the judge.
- A two-class linear model with Gaussian input noise, whose majority vote is the noiseless
  linear classifier (the logit difference is Gaussian around its noiseless value): its Linf
  robust accuracy under the majority vote is known in closed form, and the evaluation reaches
  it on every path (a curve, the suite, `evaluate_robustness` with and without continuation).
- A randomized model judged one noisy forward at a time looked far less robust than it is; the
  judged curves now agree with the suite's majority-judged worst case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from robustlab.app.external_model import build_external_model
from robustlab.attacks import FGSM, PGD, AttackSpec
from robustlab.attacks.geometry import madry_step_size
from robustlab.data import dataset_info, load_dataset, stratified_subset
from robustlab.evaluation import (
    InputNoise,
    Judge,
    MajorityVote,
    evaluate,
    evaluate_robustness,
    robust_accuracy,
    worst_case,
)
from tests.app_helpers import compose_tiny, job_results, run_console
from tests.external_models import fitted_mlp

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 0.005  # input noise
EPS = (0.02, 0.06)


class NeverFooled(Judge):
    """A judge that calls every prediction correct (a bug in any path that bypasses it shows)."""

    def correct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.rows_judged += len(images)
        return torch.ones(len(images), dtype=torch.bool, device=labels.device)

    def accepts_claims_of(self, crafting: nn.Module) -> bool:
        return False


def linear_two_class(seed: int = 0, n: int = 240):
    """(model, images, labels, w): logits [0, w.x + b] on 1x4x4 images around 0.5; labels
    such that every example is correct, with margins clear of each eps's boundary."""
    generator = torch.Generator().manual_seed(seed)
    linear = nn.Linear(16, 2)
    with torch.no_grad():
        w = torch.randn(16, generator=generator)
        linear.weight.copy_(torch.stack([torch.zeros(16), w]))
        linear.bias.copy_(torch.tensor([0.0, -0.5 * float(w.sum())]))
    model = nn.Sequential(nn.Flatten(), linear).eval()
    images = (0.5 + 0.25 * (2 * torch.rand(n, 1, 4, 4, generator=generator) - 1)).float()
    margin = (images.flatten(1) - 0.5) @ w  # the logit difference of class 1 over class 0
    labels = (margin > 0).long()
    # keep examples whose |margin| is at least 4 noise std away from every eps's threshold
    scale = w.abs().sum()
    noise = 4 * SIGMA * w.norm()
    clear = (margin.abs() > noise) & torch.stack(
        [(margin.abs() - e * scale).abs() > noise for e in EPS]
    ).all(0)
    return model, images[clear], labels[clear], w


def closed_form(images: torch.Tensor, w: torch.Tensor, eps: float) -> float:
    """Majority-vote Linf robust accuracy of the linear model: the margin exceeds eps * |w|_1
    (the images sit in [0.25, 0.75], so the optimal perturbation is never clipped)."""
    margin = ((images.flatten(1) - 0.5) @ w).abs()
    return float((margin > eps * w.abs().sum()).float().mean())


def pgd_factory(model: nn.Module):
    return lambda e: PGD(model, eps=e, alpha=madry_step_size(e, 10), steps=10)


def test_no_break_counts_without_the_judge():
    model, images, labels, _ = linear_two_class()
    noisy = InputNoise(model, SIGMA)
    never = NeverFooled(noisy, draws=3)
    curve = robust_accuracy(noisy, images, labels, pgd_factory(noisy), EPS, judge=never)
    assert curve.accuracy == [1.0, 1.0] and never.rows_judged > 0
    # the same attacks do break examples when judged for real
    real = robust_accuracy(noisy, images, labels, pgd_factory(noisy), EPS, judge=Judge(noisy, 11))
    assert real.accuracy[-1] < 1.0
    deterministic = NeverFooled(model)
    fgsm = robust_accuracy(
        model, images, labels, lambda e: FGSM(model, e), EPS, judge=deterministic
    )
    assert fgsm.accuracy == [1.0, 1.0]


def test_the_suite_counts_no_break_without_the_judge():
    model, images, labels, _ = linear_two_class()
    model4 = nn.Sequential(model, nn.ConstantPad1d((0, 2), -10.0))  # four classes for APGD-T
    never = NeverFooled(model4)
    result = worst_case(model4, images, labels, EPS, suite="fast", judge=never)
    assert result.accuracy == [1.0, 1.0] and never.rows_judged > len(images)
    real = worst_case(model4, images, labels, EPS, suite="fast")
    assert real.accuracy[-1] < 1.0


@pytest.mark.parametrize("schedule", ["continuation", "full"])
def test_a_noisy_linear_model_reaches_its_closed_form(schedule):
    model, images, labels, w = linear_two_class()
    noisy = InputNoise(model, SIGMA)
    expected = [closed_form(images, w, e) for e in EPS]
    assert 0.1 < expected[-1] < expected[0] < 0.95  # survivors and breaks at both eps
    specs = {"pgd": AttackSpec("pgd", {"steps": 10, "alpha": 0.02})}
    kept = [("worst_case", e) for e in EPS]
    report = evaluate_robustness(
        noisy,
        images,
        labels,
        specs,
        EPS,
        suite="none",
        schedule=schedule,
        large_eps=None,
        keep_adversarial=kept,
    )
    vote = MajorityVote(noisy, 101)  # a fresh vote on the images the evaluation returned
    with torch.no_grad():
        predictions = [vote(report.adversarial[key]).argmax(1) for key in kept]
    rejudged = [float((p == labels).float().mean()) for p in predictions]
    assert rejudged == pytest.approx(report.worst_case.accuracy)
    assert report.worst_case.draws > 1  # detected as randomized: judged by a majority vote
    assert report.curves["pgd"].accuracy == pytest.approx(expected)
    assert report.curves["pgd"].schedule == "full"  # a randomized curve runs eps by eps
    assert report.checks["stochastic_forward"].status == "pass"  # EOT and the vote ran


def test_a_noisy_linear_model_judged_by_the_suite():
    model, images, labels, w = linear_two_class()
    model4 = nn.Sequential(model, nn.ConstantPad1d((0, 2), -10.0))
    noisy = InputNoise(model4, SIGMA)
    result = worst_case(noisy, images, labels, EPS, suite="fast", eot_iter=4, draws=11)
    assert set(result.attack_cost) == {"apgd_ce", "apgd_dlr"}  # AutoAttack's rand protocol
    expected = [closed_form(images, w, e) for e in EPS]
    assert result.accuracy == pytest.approx(expected)


def test_every_verdict_of_a_randomized_model_is_a_majority():
    model, images, labels, _ = linear_two_class()
    noisy = InputNoise(model, 0.2)  # one draw gets about a quarter of the examples wrong
    one_draw = robust_accuracy(noisy, images, labels, pgd_factory(noisy), [0.0, 0.01])
    judged = robust_accuracy(
        noisy, images, labels, pgd_factory(noisy), [0.0, 0.01], judge=Judge(noisy, 101)
    )
    vote = MajorityVote(noisy, 101)
    with torch.no_grad():
        clean = float((vote(images).argmax(1) == labels).float().mean())
    # one noisy forward calls many examples wrong; the 101-draw vote (a fresh one agrees) not
    assert one_draw.accuracy[-1] < judged.accuracy[-1] - 0.15
    assert judged.clean_accuracy == pytest.approx(clean, abs=0.05) and clean > 0.9


EOT = 4  # the paths' agreement is under test, not the attack's strength: a short EOT
NOISY_FACTORIES = {
    "input": ("tests.external_models:noisy_input_mlp", "+model.kwargs.sigma=0.25"),
    "logit": ("tests.external_models:noisy_logit_mlp", "+model.kwargs.sigma=1.5"),
}


@pytest.mark.slow
@pytest.mark.parametrize("noise", sorted(NOISY_FACTORIES))
def test_cli_library_and_full_schedule_agree_on_a_randomized_model(noise, tmp_path):
    """The command line's default schedule (PGD as an eps-continuation stream), the library's
    `evaluate_robustness(schedule="full")` and `evaluate()` give one majority-judged answer."""
    images, labels = load_dataset("digits", split="train")
    fitted = fitted_mlp(images, labels)
    weights = tmp_path / "mlp.safetensors"
    save_file(fitted.state_dict(), str(weights))
    mean, std = float(images.mean()), float(images.std())
    factory, sigma = NOISY_FACTORIES[noise]
    proc = run_console(
        "robustlab-eval",
        "model=external",
        f"model.factory={factory}",
        sigma,
        f"model.weights={weights}",
        f"model.mean=[{mean}]",
        f"model.std=[{std}]",
        "experiment=tiny",
        "detector=none",
        "logger=none",
        "eval.max_examples=40",
        "eval.eps=[0.05]",
        f"eval.eot_iter={EOT}",
        cwd=tmp_path,
        timeout=600,
        PYTHONPATH=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (cli,) = job_results(tmp_path / "outputs")
    assert cli["worst_case"]["eot"]["draws"] > 1 and cli["attack_schedule"]["pgd"] == "full"
    assert cli["checks"]["stochastic_forward"]["status"] == "pass"

    test_x, test_y = stratified_subset(*load_dataset("digits", split="test"), 40, seed=0)
    cfg = compose_tiny(tmp_path, "model=external", f"model.factory={factory}", sigma)
    cfg.model.weights, cfg.model.mean, cfg.model.std = str(weights), [mean], [std]
    model = build_external_model(cfg.model, dataset_info("digits"), torch.device("cpu"))
    specs = {"pgd": AttackSpec("pgd", {"steps": 3, "step_size": 0.5})}
    library = evaluate_robustness(
        model,
        test_x,
        test_y,
        specs,
        [0.05],
        suite="fast",
        schedule="full",
        large_eps=None,
        eot_iter=EOT,
    )
    card = evaluate(model, test_x, test_y, [0.05], suite="fast", large_eps=None, eot_iter=EOT)
    cli_worst = cli["robust_accuracy"]["worst_case"]["0.05"]
    low, high = cli["robust_accuracy_ci"]["worst_case"]["0.05"]
    for other in (library.worst_case.accuracy[0], card.worst_case["0.05"]):
        assert low <= other <= high, (cli_worst, other)
    assert abs(cli["clean_accuracy"] - card.clean_accuracy) <= 0.1
