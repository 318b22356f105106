"""Properties of the native FGSM/PGD engine and its agreement with torchattacks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchattacks

from robustlab.attacks import FGSM, PGD, build_attack
from tests.attack_fixtures import digits, model  # noqa: F401  (pytest fixtures)

EPS = 0.1
L2_EPS = 1.0


def _accuracy(net, images, labels):
    with torch.no_grad():
        return (net.eval()(images).argmax(1) == labels).float().mean().item()


def _norm(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "Linf" else flat.norm(dim=1)


ATTACKS = {
    "fgsm": (lambda m: FGSM(m, eps=EPS), "Linf", EPS),
    "pgd_linf": (lambda m: PGD(m, eps=EPS, alpha=EPS / 4, steps=5), "Linf", EPS),
    "pgd_l2": (lambda m: PGD(m, eps=L2_EPS, alpha=0.25, steps=5, norm="L2"), "L2", L2_EPS),
    "pgd_margin": (lambda m: PGD(m, eps=EPS, alpha=EPS / 4, steps=5, loss="margin"), "Linf", EPS),
    "pgd_restarts_train": (
        lambda m: PGD(m, eps=EPS, alpha=EPS / 4, steps=3, restarts=2, model_mode="train"),
        "Linf",
        EPS,
    ),
    "ta_mifgsm": (
        lambda m: build_attack("MIFGSM", m, eps=EPS, alpha=EPS / 4, steps=5),
        "Linf",
        EPS,
    ),
    "ta_apgd": (lambda m: build_attack("apgd", m, eps=EPS, steps=5), "Linf", EPS),
    "ta_cw": (lambda m: build_attack("CW", m, c=1.0, steps=10, lr=0.05), "L2", float("inf")),
}


@pytest.mark.parametrize("start_mode", ["train", "eval"])
@pytest.mark.parametrize("key", sorted(ATTACKS))
def test_attack_contract(model, digits, key, start_mode):  # noqa: F811
    make, norm, eps = ATTACKS[key]
    images, labels = digits
    images_before, labels_before = images.clone(), labels.clone()
    clean_accuracy = _accuracy(model, images, labels)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    sentinel = [torch.full_like(p, 0.5) for p in model.parameters()]
    for param, grad in zip(model.parameters(), sentinel, strict=True):
        param.grad = grad.clone()
    model.train(start_mode == "train")
    model.features[1].train(start_mode != "train")  # one module in the other mode
    flags = [m.training for m in model.modules()]

    adv = make(model)(images, labels)

    assert [m.training for m in model.modules()] == flags
    assert torch.equal(images, images_before) and torch.equal(labels, labels_before)
    assert not images.requires_grad and not adv.requires_grad
    assert adv.shape == images.shape and adv.dtype == images.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    assert (_norm(adv - images, norm) <= eps + 1e-6).all()
    for name, value in model.state_dict().items():
        assert torch.equal(value, buffers[name]), name
    for param, grad in zip(model.parameters(), sentinel, strict=True):
        assert param.requires_grad and torch.equal(param.grad, grad)
    assert _accuracy(model, adv, labels) < clean_accuracy - 0.2


def test_fgsm_equals_torchattacks(model, digits):  # noqa: F811
    images, labels = digits
    ours = FGSM(model, eps=EPS)(images, labels)
    theirs = torchattacks.FGSM(model, eps=EPS)(images, labels)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_without_early_stop_equals_torchattacks(model, digits, norm):  # noqa: F811
    images, labels = digits
    eps, alpha = (EPS, EPS / 4) if norm == "Linf" else (L2_EPS, 0.25)
    torch.manual_seed(3)
    ours = PGD(model, eps=eps, alpha=alpha, steps=7, norm=norm, early_stop=False)(images, labels)
    reference = torchattacks.PGD if norm == "Linf" else torchattacks.PGDL2
    torch.manual_seed(3)
    theirs = reference(model, eps=eps, alpha=alpha, steps=7)(images, labels)
    assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_early_stop_is_never_weaker_than_torchattacks(model, digits, norm):  # noqa: F811
    images, labels = digits
    eps, alpha = (0.06, 0.03) if norm == "Linf" else (0.6, 0.3)
    for seed in range(2):
        torch.manual_seed(seed)
        result = PGD(model, eps=eps, alpha=alpha, steps=10, norm=norm).run(images, labels)
        reference = torchattacks.PGD if norm == "Linf" else torchattacks.PGDL2
        torch.manual_seed(seed)
        theirs = reference(model, eps=eps, alpha=alpha, steps=10)(images, labels)
        assert _accuracy(model, result.adv_images, labels) <= _accuracy(model, theirs, labels)


def test_early_stop_returns_fooling_iterates(model, digits):  # noqa: F811
    images, labels = digits
    result = PGD(model, eps=0.06, alpha=0.03, steps=10).run(images, labels)
    with torch.no_grad():
        fooled = model(result.adv_images).argmax(1) != labels
    assert torch.equal(result.success, fooled)
    assert 0 < fooled.sum() < len(labels)
    # Without a random start, an example misclassified from the outset is returned unchanged.
    plain = PGD(model, eps=0.06, alpha=0.03, steps=10, random_start=False).run(images, labels)
    with torch.no_grad():
        wrong = model(images).argmax(1) != labels
    assert wrong.any() and torch.equal(plain.adv_images[wrong], images[wrong])


def _count_grad_forwards(net):
    counts = []

    def hook(_module, inputs):
        if torch.is_grad_enabled() and inputs[0].requires_grad:
            counts.append(len(inputs[0]))

    return counts, net.register_forward_pre_hook(hook)


def test_grad_evals_count_forward_backward_passes(model, digits):  # noqa: F811
    images, labels = digits
    n = len(images)
    assert FGSM(model, eps=EPS).run(images, labels).grad_evals == n
    full = PGD(model, eps=EPS, alpha=EPS / 4, steps=6, early_stop=False).run(images, labels)
    assert full.grad_evals == 6 * n
    counts, handle = _count_grad_forwards(model)
    try:
        result = PGD(model, eps=EPS, alpha=EPS / 4, steps=6, restarts=2).run(images, labels)
    finally:
        handle.remove()
    assert result.grad_evals == sum(counts)
    assert len(counts) > 6 and counts[0] == n and counts[5] < n  # later steps shrink


def test_targeted_reaches_target(model, digits):  # noqa: F811
    images, labels = digits
    targets = (labels + 1) % 10
    result = PGD(model, eps=0.3, alpha=0.03, steps=20, targeted=True).run(images, targets)
    with torch.no_grad():
        reached = model(result.adv_images).argmax(1) == targets
    assert torch.equal(result.success, reached)
    assert reached.float().mean() > 0.8
    fgsm = FGSM(model, eps=0.1, targeted=True).run(images, targets)
    assert fgsm.success.float().mean() > (model(images).argmax(1) == targets).float().mean()


def test_callable_loss_matches_named_loss(model, digits):  # noqa: F811
    images, labels = digits

    def cross_entropy(net, adv, _images, y):
        return F.cross_entropy(net(adv), y, reduction="none")

    named = PGD(model, eps=EPS, alpha=EPS / 4, steps=5, random_start=False).run(images, labels)
    custom = PGD(model, eps=EPS, alpha=EPS / 4, steps=5, random_start=False, loss=cross_entropy)
    result = custom.run(images, labels)
    same = (result.adv_images - named.adv_images).flatten(1).abs().amax(1) < 1e-6
    assert same.float().mean() >= 0.95
    assert result.grad_evals == named.grad_evals  # logits reused, no extra forward passes


def test_restarts_keep_worst_case(model, digits):  # noqa: F811
    images, labels = digits
    torch.manual_seed(0)
    one = PGD(model, eps=0.05, alpha=0.02, steps=3).run(images, labels)
    torch.manual_seed(0)
    many = PGD(model, eps=0.05, alpha=0.02, steps=3, restarts=4).run(images, labels)
    assert torch.equal(many.success[one.success], one.success[one.success])
    assert many.success.sum() >= one.success.sum()
    assert (many.perturbation_norm <= 0.05 + 1e-6).all()


def test_bad_arguments_raise_config_error():
    from robustlab.errors import ConfigError

    net = torch.nn.Linear(4, 2)
    for kwargs in ({"norm": "L3"}, {"steps": -1}, {"restarts": 2, "random_start": False}):
        with pytest.raises(ConfigError):
            PGD(net, **kwargs)
    with pytest.raises(ConfigError):
        FGSM(net, eps=-0.1)
    with pytest.raises(ConfigError):
        FGSM(net, loss="hinge")


def test_protocol_projects_into_the_ball(model, digits):  # noqa: F811
    images, labels = digits
    far = (images + 0.5 * torch.randn_like(images)).clamp(0, 1)
    for norm, eps in (("Linf", EPS), ("L2", L2_EPS)):
        attack = PGD(model, eps=eps, alpha=eps / 4, steps=0, norm=norm)
        start = attack.project(far, images)
        assert (_norm(start - images, norm) <= eps + 1e-6).all()
        inside = images + 0.5 * (start - images)  # strictly inside the ball: kept as is
        assert torch.allclose(attack.project(inside, images), inside, atol=1e-6)
        with attack.model_context():
            grad, logits = attack.gradient(start, images, labels)
        stepped = attack.step(start, images, grad, eps=torch.full((len(images),), eps / 2))
        assert (_norm(stepped - images, norm) <= eps / 2 + 1e-6).all()
        assert torch.equal(logits.argmax(1), model(start).argmax(1))
