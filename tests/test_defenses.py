"""Defenses as objectives of the one fit loop: PGD-AT, fast AT, TRADES, distillation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from robustlab.training import CrossEntropy, Monitor
from robustlab.training.objectives import (
    TRADES,
    AdversarialTraining,
    Distillation,
    FastAdversarialTraining,
    soft_labels,
)
from robustlab.training.objectives.adversarial import craft
from robustlab.training.objectives.trades import kl_to_clean
from robustlab.training.robust_monitor import HeldOutRobustness, catastrophic_overfitting
from tests.defense_fixtures import (
    DEFENSES,
    EPS,
    accuracies,
    bn_buffers,
    digits,
    make_objective,
    same_state,
    snapshot,
    tiny_model,
    train,
    trained_teacher,
    with_grads,
)


@pytest.fixture(scope="module")
def batch():
    return digits(48)


@pytest.fixture(scope="module")
def teacher():
    return trained_teacher()


def _objective(name, teacher):
    objective = make_objective(name, teacher if name == "distillation" else None)
    objective.on_epoch_start(1, 2)  # past the one-epoch eps warm-up of pgd_at_mixed
    return objective


def _loss(objective, model, images, labels):
    torch.manual_seed(0)  # the same random start for both evaluations
    return objective(model, images, labels).loss


@pytest.mark.parametrize("name", DEFENSES)
def test_one_sgd_step_lowers_the_objective(name, batch, teacher):
    images, labels = batch
    model, objective = tiny_model().train(), _objective(name, teacher)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    before = _loss(objective, model, images, labels)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert _loss(objective, model, images, labels).item() < before.item()


def _assert_in_ball(adv, images, eps):
    assert adv.shape == images.shape and not torch.equal(adv, images)
    assert (adv - images).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0


def test_pgd_at_crafts_a_stronger_point_inside_the_ball(batch):
    images, labels = batch
    model = tiny_model().train()
    adv, evals = craft(model, images, labels, eps=EPS, alpha=EPS / 4, steps=5)
    _assert_in_ball(adv, images, EPS)
    assert evals == 5 * len(images)
    model.eval()
    with torch.no_grad():
        assert F.cross_entropy(model(adv), labels) > F.cross_entropy(model(images), labels)


def test_trades_maximises_the_kl_inside_the_ball(batch):
    images, labels = batch
    model = tiny_model().train()
    torch.manual_seed(0)
    adv, evals = TRADES(eps=EPS, alpha=EPS / 4, steps=5).adversarial(model, images)
    _assert_in_ball(adv, images, EPS)
    assert evals == 5 * len(images)
    model.eval()
    with torch.no_grad():
        kl = kl_to_clean(F.softmax(model(images), dim=1))
        noise = (images + torch.empty_like(images).uniform_(-EPS, EPS)).clamp(0, 1)
        kl_adv, kl_noise = kl(model, adv, images, labels), kl(model, noise, images, labels)
    assert kl_adv.mean() > 10 * kl_noise.mean()


def test_trades_loss_is_clean_ce_plus_beta_times_the_kl_to_the_adversarial(batch, monkeypatch):
    # Zhang et al. (2019), eq. 5, computed here independently in float64 on a fixed x_adv
    images, labels = batch
    model = tiny_model().eval()  # running BN statistics: both forwards see the same layers
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(30.0)  # confident logits, so that x and x_adv disagree visibly
    torch.manual_seed(0)
    adv = (images + 0.2 * torch.randn_like(images)).clamp(0, 1)
    objective = TRADES(eps=EPS, alpha=EPS / 4, steps=1, beta=3.0)
    monkeypatch.setattr(objective, "adversarial", lambda model, images: (adv, 0))
    step = objective(model, images, labels)
    with torch.no_grad():
        clean_logits, adv_logits = model(images).double(), model(adv).double()
        p_clean, p_adv = clean_logits.softmax(1), adv_logits.softmax(1)
        kl = (p_clean * (p_clean.log() - p_adv.log())).sum(1).mean()
        expected = F.cross_entropy(clean_logits, labels) + 3.0 * kl
    assert kl > 1e-3  # the robust term is large enough for a lost beta to show
    assert step.loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["pgd_eval", "pgd_train", "trades"])
def test_crafting_leaves_the_model_untouched(name, batch):
    images, labels = batch
    model = tiny_model()
    grads = with_grads(model, images, labels)
    state = snapshot(model)
    if name == "trades":
        TRADES(eps=EPS, alpha=EPS / 4, steps=3).adversarial(model, images)
    else:
        mode = name.split("_")[1]
        craft(model, images, labels, eps=EPS, alpha=EPS / 4, steps=3, model_mode=mode)
    assert model.training
    assert same_state(snapshot(model), state)  # weights and BN running statistics
    for n, p in model.named_parameters():
        assert p.requires_grad and torch.equal(p.grad, grads[n]), n


@pytest.mark.parametrize("name", DEFENSES)
def test_objective_keeps_train_mode_and_grads_and_counts_its_cost(name, batch, teacher):
    images, labels = batch
    model, objective = tiny_model(), _objective(name, teacher)
    grads = with_grads(model, images, labels)
    step = objective(model, images, labels)
    assert model.training
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert step.loss.ndim == 0 and step.loss.requires_grad
    assert step.logits.shape == (len(images), 10) and not step.logits.requires_grad
    n = len(images)
    expected = {"pgd_at": 3 * n, "pgd_at_mixed": 4 * n, "fast_at": 2 * n, "trades": 4 * n}
    assert step.grad_evals == expected.get(name, n)


def test_mix_one_is_clean_cross_entropy(batch):
    images, labels = batch
    model = tiny_model().train()
    start = snapshot(model)
    mixed = AdversarialTraining(eps=EPS, alpha=EPS / 4, steps=3, mix=1.0)(model, images, labels)
    after_mixed = snapshot(model)
    model.load_state_dict(start)
    clean = CrossEntropy()(model, images, labels)
    assert torch.allclose(mixed.loss, clean.loss, atol=1e-7)
    assert mixed.grad_evals == clean.grad_evals == len(images)
    assert same_state(snapshot(model), after_mixed)  # same BN updates: no adversarial pass


def test_mixed_loss_is_the_weighted_sum(batch):
    images, labels = batch
    model = tiny_model().train()
    start = snapshot(model)
    torch.manual_seed(3)
    mixed = AdversarialTraining(eps=EPS, alpha=EPS / 4, steps=2, mix=0.3)(model, images, labels)
    model.load_state_dict(start)
    torch.manual_seed(3)
    adv, _ = craft(model, images, labels, eps=EPS, alpha=EPS / 4, steps=2)
    expected = 0.7 * F.cross_entropy(model(adv), labels)
    expected = expected + 0.3 * F.cross_entropy(model(images), labels)
    assert torch.allclose(mixed.loss, expected, atol=1e-6)


def test_eps_warmup_is_linear_and_scales_the_step():
    objective = AdversarialTraining(eps=0.3, alpha=0.075, steps=3, warmup_epochs=3)
    values = []
    for epoch in range(5):
        objective.on_epoch_start(epoch, 5)
        values.append((objective.current_eps, objective.current_alpha))
    eps, alpha = zip(*values, strict=True)
    assert eps == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.3])
    assert alpha == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.075])
    plain = AdversarialTraining(eps=0.3, alpha=0.075, steps=3)
    plain.on_epoch_start(0, 5)
    assert plain.current_eps == 0.3


def test_zero_eps_warmup_epoch_trains_on_clean_inputs(batch):
    images, labels = batch
    objective = AdversarialTraining(eps=EPS, alpha=EPS / 4, steps=3, warmup_epochs=2)
    objective.on_epoch_start(0, 4)
    model = tiny_model().train()
    start = snapshot(model)
    step = objective(model, images, labels)
    model.load_state_dict(start)
    assert torch.allclose(step.loss, CrossEntropy()(model, images, labels).loss)
    assert step.grad_evals == len(images)


def test_settings_are_described_and_validated(teacher):
    fast = FastAdversarialTraining(eps=0.2)
    assert fast.steps == 1 and fast.random_start and fast.alpha == pytest.approx(0.25)
    described = {d: _objective(d, teacher).describe() for d in DEFENSES}
    names = [described[d]["name"] for d in DEFENSES]
    assert names == ["pgd_at", "pgd_at", "fast_at", "trades", "distillation"]
    assert described["pgd_at_mixed"]["mix"] == 0.5 and described["trades"]["beta"] == 6.0
    assert described["distillation"]["temperature"] == 4.0
    json.dumps(described)  # recorded in results.json as is
    with pytest.raises(ValueError):
        AdversarialTraining(eps=0.1, alpha=0.02, steps=3, mix=1.5)
    with pytest.raises(ValueError):
        TRADES(eps=0.1, alpha=0.02, steps=3, beta=-1)
    with pytest.raises(ValueError):
        Distillation(None, 10.0)


def _entropy(p):
    return -(p * p.clamp_min(1e-12).log()).sum(1).mean()


def test_soft_labels_are_the_teachers_tempered_probabilities(batch, teacher):
    images, _ = batch
    teacher.train()
    buffers = bn_buffers(teacher)
    probs = soft_labels(teacher, images, 4.0)
    assert teacher.training
    assert all(torch.equal(b, buffers[n]) for n, b in teacher.named_buffers())
    assert (probs >= 0).all() and torch.allclose(probs.sum(1), torch.ones(len(images)))
    teacher.eval()
    with torch.no_grad():
        assert torch.allclose(probs, F.softmax(teacher(images) / 4.0, dim=1), atol=1e-6)
    entropies = [_entropy(soft_labels(teacher, images, t)) for t in (1.0, 4.0, 20.0)]
    assert entropies[0] < entropies[1] < entropies[2]


def test_distillation_loss_is_soft_cross_entropy_at_t(batch, teacher):
    images, labels = batch
    student = tiny_model(seed=1).train()
    start = snapshot(student)
    step = Distillation(teacher, 4.0, scale_by_temperature=False)(student, images, labels)
    student.load_state_dict(start)
    logits = student(images)
    targets = soft_labels(teacher, images, 4.0)
    expected = -(targets * F.log_softmax(logits / 4.0, 1)).sum(1).mean()
    assert torch.allclose(step.loss, expected, atol=1e-6)
    assert torch.allclose(step.logits, logits.detach(), atol=1e-6)  # deployed at T = 1
    student.load_state_dict(start)
    scaled = Distillation(teacher, 4.0)(student, images, labels)
    assert torch.allclose(scaled.loss, 4.0 * expected, atol=1e-5)  # gradient scale of T = 1


def test_catastrophic_overfitting_fires_on_collapse_only():
    key = "heldout_pgd_accuracy"
    collapse = [{key: v, "epoch": i + 1} for i, v in enumerate([0.30, 0.45, 0.52, 0.03])]
    warning = catastrophic_overfitting(collapse)
    assert warning is not None and "0.520 (epoch 3)" in warning and "0.030 (epoch 4)" in warning
    healthy = [{key: v, "epoch": i + 1} for i, v in enumerate([0.30, 0.45, 0.40, 0.47])]
    assert catastrophic_overfitting(healthy) is None
    assert catastrophic_overfitting(healthy, drop=0.01) is not None
    assert catastrophic_overfitting([{"loss": 1.0}]) is None


def test_heldout_robustness_measures_without_side_effects(teacher):
    images, labels = digits(64, split="test")
    monitor = HeldOutRobustness(images, labels, eps=EPS, alpha=EPS / 4, steps=5)
    teacher.train()
    buffers = bn_buffers(teacher)
    torch.manual_seed(5)
    metrics = monitor.on_epoch_end(0, teacher)
    drawn = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(drawn, torch.rand(3))  # the training RNG stream is untouched
    assert metrics == monitor.on_epoch_end(1, teacher)  # same weights, same measurement
    assert set(metrics) == {"heldout_pgd_accuracy", "heldout_clean_accuracy"}
    clean, robust = metrics["heldout_clean_accuracy"], metrics["heldout_pgd_accuracy"]
    assert 0.0 <= robust <= clean <= 1.0 and clean > 0.5
    assert teacher.training
    assert all(torch.equal(b, buffers[n]) for n, b in teacher.named_buffers())


@pytest.mark.parametrize("name", DEFENSES)
def test_resume_mid_training_matches_an_uninterrupted_run(name, tmp_path, teacher):
    images, labels = digits(96)
    kwargs = {}
    if name == "fast_at":  # also exercises the held-out monitor and best-epoch restore
        held_x, held_y = digits(32, split="test")
        kwargs = {
            "callbacks": [HeldOutRobustness(held_x, held_y, eps=EPS, alpha=EPS / 4, steps=3)],
            "monitor": Monitor("heldout_pgd_accuracy", "max"),
        }

    def run(epochs, directory):
        objective = make_objective(name, teacher)
        return train(objective, images, labels, epochs, checkpoint_dir=directory, **kwargs)

    whole, _ = run(2, tmp_path / "whole")
    run(1, tmp_path / "cut")  # interrupted after the first epoch
    resumed, result = run(2, tmp_path / "cut")
    assert result.resumed_from == 1 and len(result.history) == 2
    assert same_state(snapshot(whole), snapshot(resumed))  # bit for bit on CPU


def test_adversarial_training_raises_pgd_accuracy_on_digits():
    images, labels = digits(512)
    test_x, test_y = digits(300, split="test")
    budget = {"epochs": 4, "lr": 0.1, "widths": (16, 32), "scheduler": "cosine"}
    standard, _ = train(CrossEntropy(), images, labels, **budget)
    pgd_at = AdversarialTraining(eps=EPS, alpha=EPS / 2, steps=3)
    robust, _ = train(pgd_at, images, labels, **budget)
    standard_clean, standard_pgd = accuracies(standard, test_x, test_y, EPS)
    robust_clean, robust_pgd = accuracies(robust, test_x, test_y, EPS)
    assert robust_pgd > standard_pgd + 0.2
    assert robust_clean > 0.8 and standard_clean > 0.8
