"""Defenses as objectives of the one fit loop: PGD-AT, fast AT, TRADES, distillation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from defense_fixtures import (
    DEFENSES,
    EPS,
    bn_buffers,
    digits,
    make_objective,
    tiny_model,
    train,
    trained_teacher,
)

from robustlab.attacks.pgd import PGD
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


@pytest.fixture(scope="module")
def batch():
    return digits(48)


@pytest.fixture(scope="module")
def teacher():
    return trained_teacher()


def _objective(name, teacher):
    return make_objective(name, teacher if name == "distillation" else None)


def _loss(objective, model, images, labels, seed=0):
    torch.manual_seed(seed)  # the same random start for both evaluations
    return objective(model, images, labels).loss


@pytest.mark.parametrize("name", DEFENSES)
def test_one_sgd_step_lowers_the_objective(name, batch, teacher):
    images, labels = batch
    model, objective = tiny_model(), _objective(name, teacher)
    objective.on_epoch_start(1, 2)  # past the warm-up of pgd_at_mixed
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    model.train()
    before = _loss(objective, model, images, labels)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = _loss(objective, model, images, labels)
    assert after.item() < before.item()


def _ball_check(adv, images, eps):
    assert adv.shape == images.shape
    assert (adv - images).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    assert not torch.equal(adv, images)


def test_pgd_at_crafts_a_stronger_point_inside_the_ball(batch):
    images, labels = batch
    model = tiny_model().train()
    adv, evals = craft(model, images, labels, eps=EPS, alpha=EPS / 4, steps=5)
    _ball_check(adv, images, EPS)
    assert evals == 5 * len(images)
    model.eval()
    with torch.no_grad():
        assert F.cross_entropy(model(adv), labels) > F.cross_entropy(model(images), labels)


def test_trades_maximises_the_kl_inside_the_ball(batch):
    images, labels = batch
    model = tiny_model().train()
    torch.manual_seed(0)
    adv, evals = TRADES(eps=EPS, alpha=EPS / 4, steps=5).adversarial(model, images)
    _ball_check(adv, images, EPS)
    assert evals == 5 * len(images)
    model.eval()
    with torch.no_grad():
        loss = kl_to_clean(F.softmax(model(images), dim=1))
        noise = (images + torch.empty_like(images).uniform_(-EPS, EPS)).clamp(0, 1)
        assert loss(model, adv, images, labels).mean() > 10 * loss(model, noise, images, labels).mean()


def _with_grads(model, images, labels):
    model.train()
    F.cross_entropy(model(images), labels).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["pgd_eval", "pgd_train", "trades"])
def test_crafting_leaves_the_model_untouched(name, batch):
    images, labels = batch
    model = tiny_model()
    grads = _with_grads(model, images, labels)
    params, buffers = {n: p.detach().clone() for n, p in model.named_parameters()}, bn_buffers(model)
    if name == "trades":
        TRADES(eps=EPS, alpha=EPS / 4, steps=3).adversarial(model, images)
    else:
        mode = name.split("_")[1]
        craft(model, images, labels, eps=EPS, alpha=EPS / 4, steps=3, model_mode=mode)
    assert model.training
    for n, p in model.named_parameters():
        assert torch.equal(p, params[n]) and torch.equal(p.grad, grads[n]), n
        assert p.requires_grad
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n]), n


@pytest.mark.parametrize("name", DEFENSES)
def test_objective_keeps_train_mode_and_grads_and_counts_its_cost(name, batch, teacher):
    images, labels = batch
    model, objective = tiny_model(), _objective(name, teacher)
    objective.on_epoch_start(1, 2)
    grads = _with_grads(model, images, labels)
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
    start = {k: v.clone() for k, v in model.state_dict().items()}
    mixed = AdversarialTraining(eps=EPS, alpha=EPS / 4, steps=3, mix=1.0)(model, images, labels)
    after_mixed = bn_buffers(model)
    model.load_state_dict(start)
    clean = CrossEntropy()(model, images, labels)
    assert torch.allclose(mixed.loss, clean.loss, atol=1e-7)
    assert mixed.grad_evals == clean.grad_evals == len(images)
    assert all(torch.equal(b, after_mixed[n]) for n, b in model.named_buffers())


def test_mixed_loss_is_the_weighted_sum(batch):
    images, labels = batch
    model = tiny_model().train()
    mix = 0.3
    objective = AdversarialTraining(eps=EPS, alpha=EPS / 4, steps=2, mix=mix)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(3)
    mixed = objective(model, images, labels).loss
    model.load_state_dict(start)
    torch.manual_seed(3)
    adv, _ = craft(model, images, labels, eps=EPS, alpha=EPS / 4, steps=2)
    expected = (1 - mix) * F.cross_entropy(model(adv), labels)
    expected = expected + mix * F.cross_entropy(model(images), labels)
    assert torch.allclose(mixed, expected, atol=1e-6)


def test_eps_warmup_is_linear_and_scales_the_step():
    objective = AdversarialTraining(eps=0.3, alpha=0.075, steps=3, warmup_epochs=3)
    values = []
    for epoch in range(5):
        objective.on_epoch_start(epoch, 5)
        values.append((objective.current_eps, objective.current_alpha))
    eps, alpha = zip(*values)
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
    start = {k: v.clone() for k, v in model.state_dict().items()}
    step = objective(model, images, labels)
    model.load_state_dict(start)
    assert torch.allclose(step.loss, CrossEntropy()(model, images, labels).loss)
    assert step.grad_evals == len(images)


def test_fast_at_is_one_random_start_step_of_1_25_eps():
    fast = FastAdversarialTraining(eps=0.2)
    assert fast.steps == 1 and fast.random_start
    assert fast.alpha == pytest.approx(0.25)


def test_describe_names_every_setting(teacher):
    names = {d: _objective(d, teacher).describe() for d in DEFENSES}
    assert [names[d]["name"] for d in DEFENSES] == [
        "pgd_at", "pgd_at", "fast_at", "trades", "distillation"
    ]
    assert names["pgd_at_mixed"]["mix"] == 0.5 and names["trades"]["beta"] == 6.0
    assert names["fast_at"]["steps"] == 1 and names["distillation"]["temperature"] == 4.0
    json.dumps(names)  # recorded in results.json as is


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        AdversarialTraining(eps=0.1, alpha=0.02, steps=3, mix=1.5)
    with pytest.raises(ValueError):
        TRADES(eps=0.1, alpha=0.02, steps=3, beta=-1)
    with pytest.raises(ValueError):
        Distillation(None, 10.0)


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

    def entropy(p):
        return -(p * p.clamp_min(1e-12).log()).sum(1).mean()

    entropies = [entropy(soft_labels(teacher, images, t)) for t in (1.0, 4.0, 20.0)]
    assert entropies[0] < entropies[1] < entropies[2]


def test_distillation_loss_is_soft_cross_entropy_at_t(batch, teacher):
    images, labels = batch
    student = tiny_model(seed=1).train()
    start = {k: v.clone() for k, v in student.state_dict().items()}
    step = Distillation(teacher, 4.0)(student, images, labels)
    student.load_state_dict(start)
    logits = student(images)
    expected = -(soft_labels(teacher, images, 4.0) * F.log_softmax(logits / 4.0, 1)).sum(1).mean()
    assert torch.allclose(step.loss, expected, atol=1e-6)
    assert torch.allclose(step.logits, logits.detach(), atol=1e-6)  # deployed at T = 1
    student.load_state_dict(start)
    scaled = Distillation(teacher, 4.0, t_squared=True)(student, images, labels)
    assert torch.allclose(scaled.loss, 16.0 * expected, atol=1e-5)


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


def _same_weights(a, b):
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", DEFENSES)
def test_resume_mid_training_matches_an_uninterrupted_run(name, tmp_path, teacher):
    images, labels = digits(96)
    kwargs = {}
    if name == "fast_at":
        held_x, held_y = digits(32, split="test")
        kwargs = {
            "callbacks": [HeldOutRobustness(held_x, held_y, eps=EPS, alpha=EPS / 4, steps=3)],
            "monitor": Monitor("heldout_pgd_accuracy", "max"),
        }

    def run(epochs, directory):
        return train(_objective(name, teacher), images, labels, epochs, checkpoint_dir=directory, **kwargs)

    whole, _ = run(2, tmp_path / "whole")
    run(1, tmp_path / "cut")  # interrupted after the first epoch
    resumed, result = run(2, tmp_path / "cut")
    assert result.resumed_from == 1 and len(result.history) == 2
    assert _same_weights(whole, resumed)


def _pgd_accuracy(model, images, labels, eps):
    model.eval()
    torch.manual_seed(0)
    adv = PGD(model, eps=eps, alpha=eps / 4, steps=10)(images, labels)
    with torch.no_grad():
        return (model(adv).argmax(1) == labels).float().mean().item()


def test_adversarial_training_raises_pgd_accuracy_on_digits():
    images, labels = digits(640)
    test_x, test_y = digits(300, split="test")
    budget = {"epochs": 6, "lr": 0.05, "widths": (16, 32), "scheduler": "cosine"}
    standard, _ = train(CrossEntropy(), images, labels, **budget)
    robust, _ = train(AdversarialTraining(eps=EPS, alpha=EPS / 4, steps=5), images, labels, **budget)
    standard_acc = _pgd_accuracy(standard, test_x, test_y, EPS)
    robust_acc = _pgd_accuracy(robust, test_x, test_y, EPS)
    assert robust_acc > standard_acc + 0.1
