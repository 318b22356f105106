"""Precision never decides robustness: bf16 crafting (CPU autocast here) may search, but only
what the fp32 model misclassifies counts as broken."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from robustlab.attacks import AttackSpec
from robustlab.attacks.base import is_success
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.pgd import PGD
from robustlab.evaluation import evaluate_robustness, robust_accuracy
from robustlab.evaluation.judge import Judge
from robustlab.evaluation.suite import worst_case
from robustlab.models import create_model
from robustlab.models.acceleration import AutocastModel, amp_dtype, crafting_model, prepare_model

EPS = 8 / 255


class Tie(nn.Module):
    """Class 1 wins by 0.001 in fp32 whatever the input; in bf16 (8 mantissa bits) 1.001
    rounds to 1.0, the logits of classes 0 and 1 tie, and argmax says class 0. Every
    example of label 1 is correct in fp32 and looks fooled to a raw bf16 verdict."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, 10)
        with torch.no_grad():
            self.linear.weight.fill_(1e-6)  # a gradient to follow, far too small to matter
            self.linear.bias.copy_(torch.tensor([1.0, 1.001] + [0.5] * 8))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


@pytest.fixture
def tie():
    torch.manual_seed(0)
    images, labels = torch.rand(4, 3, 4, 4), torch.ones(4, dtype=torch.long)
    model = Tie().eval()
    # the premise: fp32 gets every example right, a raw bf16 verdict gets every one wrong
    assert (model(images).argmax(1) == 1).all()
    assert is_success(AutocastModel(model, tie_guard=0)(images), labels, False).all()
    return model, images, labels


def test_autocast_model_computes_in_bf16_and_returns_fp32(tie):
    model, images, _ = tie
    logits = AutocastModel(model, tie_guard=0)(images)
    assert logits.dtype == torch.float32
    assert not torch.equal(logits, model(images))  # the bf16 pass really ran
    assert crafting_model(model, None) is model


def test_the_tie_guard_gives_near_ties_their_fp32_values_and_bf16_gradient(tie):
    model, images, labels = tie
    x = images.clone().requires_grad_(True)
    guarded = AutocastModel(model)(x)  # every row is a bf16 tie: all get fp32 values
    assert torch.allclose(guarded, model(images), atol=1e-6)
    assert not is_success(guarded, labels, False).any()
    guarded[:, 1].sum().backward()  # the gradient still flows (through the bf16 pass)
    assert x.grad is not None and x.grad.abs().sum() > 0
    far = nn.Linear(3 * 4 * 4, 10).eval()
    with torch.no_grad():
        far.bias.copy_(torch.arange(10.0))  # margins of 1: no row near a tie
    raw = AutocastModel(nn.Sequential(nn.Flatten(), far), tie_guard=0)(images)
    assert torch.equal(AutocastModel(nn.Sequential(nn.Flatten(), far))(images), raw)


def test_the_judge_drops_what_only_bf16_saw(tie):
    model, images, labels = tie
    crafting = AutocastModel(model, tie_guard=0)
    claimed = is_success(crafting(images), labels, False)
    assert claimed.all()  # bf16 calls every row fooled
    judge = Judge(model)
    assert not judge.accepts_claims_of(crafting)
    assert not judge.confirm(images, labels, claimed).any()
    # a real break stays a break, and the fp32 model's own claims are its verdict
    wrong = torch.zeros_like(labels)
    assert judge.confirm(images, wrong, torch.ones(4, dtype=torch.bool)).all()
    assert judge.verdict(images, labels, claimed, crafting=model) is claimed


def test_eps_continuation_counts_only_fp32_breaks(tie):
    model, images, labels = tie
    crafting = AutocastModel(model, tie_guard=0)  # one model: the attacks form one stream
    curve = robust_accuracy(
        model,
        images,
        labels,
        lambda eps: PGD(crafting, eps=eps, alpha=eps / 4, steps=3),
        [EPS / 2, EPS],
        batch_size=2,
    )
    assert curve.schedule == "continuation" and curve.accuracy == [1.0, 1.0]
    # an attack that is not a stream (FGSM) is judged on the fp32 model after it ran
    unguarded = AutocastModel(model, tie_guard=0)
    curve = robust_accuracy(model, images, labels, lambda eps: FGSM(unguarded, eps), [EPS])
    assert curve.schedule == "full" and curve.accuracy == [1.0]


def test_the_suite_and_every_attack_judge_in_fp32(tie):
    model, images, labels = tie
    result = worst_case(
        model, images[:1], labels[:1], [EPS], suite="fast", crafting_dtype=torch.bfloat16
    )
    assert result.accuracy == [1.0]
    assert result.attack_cost["apgd_ce"]["grad_evals"] > 0  # the attacks did run
    specs = {"pgd": AttackSpec("pgd", {"steps": 3}), "fgsm": AttackSpec("fgsm", {})}
    for dtype in (None, torch.bfloat16):
        report = evaluate_robustness(
            model, images, labels, specs, [EPS], suite="none", crafting_dtype=dtype
        )
        assert report.to_results()["robust_accuracy"]["worst_case"] == {repr(EPS): 1.0}


def test_amp_and_compile_apply_on_cuda_only_and_say_so(caplog):
    cpu = torch.device("cpu")
    with caplog.at_level(logging.INFO, logger="robustlab.models.acceleration"):
        assert amp_dtype(True, cpu, "eval.amp") is None
        assert amp_dtype(True, torch.device("cuda")) is torch.bfloat16
        assert amp_dtype(False, torch.device("cuda")) is None
        model = create_model("resnet20", num_classes=10, in_channels=3)
        assert prepare_model(model, cpu, compile=True) is model
    assert "eval.amp=true applies on CUDA only" in caplog.text
    assert "compile=true applies on CUDA only" in caplog.text
    weight = next(p for p in model.parameters() if p.ndim == 4)
    assert weight.is_contiguous()  # a CPU model keeps its layout


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_gpu_check_exits_cleanly_without_a_gpu(tmp_path):
    # no nvidia-smi on PATH: the shell script says so and exits 0 before any set-up
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    (tmp_path / "dirname").symlink_to(shutil.which("dirname"))
    done = subprocess.run(
        ["/bin/bash", str(SCRIPTS / "gpu_check.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and "no NVIDIA GPU" in done.stdout, done.stderr
    # the Python part on a machine without CUDA: nothing measured, exit 0
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "gpu_check.py")], capture_output=True, text=True
    )
    assert done.returncode == 0 and "no CUDA device" in done.stdout, done.stderr
