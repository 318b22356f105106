"""The fit loop: determinism, resume after interruption, checkpoints without pickle."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from robustlab.data import TensorLoader, load_dataset
from robustlab.devices import seed_everything
from robustlab.errors import CheckpointError
from robustlab.models import create_model
from robustlab.training import (
    CrossEntropy,
    TrainingState,
    build_optimizer,
    build_scheduler,
    finished_weights,
    fit,
    load_weights,
    save_weights,
)
from robustlab.training.state_io import flatten_state, unflatten_state


def _train(epochs: int, directory=None, seed: int = 0, config=None):
    seed_everything(seed)
    images, labels = load_dataset("digits", split="train")
    loader = TensorLoader(images[:192], labels[:192], batch_size=64, seed=seed)
    model = create_model("resnet20", num_classes=10, in_channels=1)
    optimizer = build_optimizer(model, "sgd", lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = build_scheduler(optimizer, "cosine", epochs=2, steps_per_epoch=len(loader))
    result = fit(
        model,
        loader,
        CrossEntropy(),
        optimizer,
        epochs=epochs,
        scheduler=scheduler,
        checkpoint_dir=directory,
        config=config,
    )
    return model, result


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_same_seed_gives_same_weights_and_history():
    first, r1 = _train(1)
    second, r2 = _train(1)
    assert _same_weights(first, second)
    assert r1.history[0]["loss"] == r2.history[0]["loss"]


def test_different_seed_gives_different_weights():
    first, _ = _train(1, seed=0)
    second, _ = _train(1, seed=1)
    assert not _same_weights(first, second)


def test_training_lowers_the_loss():
    _, result = _train(2)
    assert result.history[1]["loss"] < result.history[0]["loss"]
    assert result.grad_evals_per_example == pytest.approx(2.0)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    uninterrupted, _ = _train(2, tmp_path / "a")
    _train(1, tmp_path / "b")  # "killed" after the first epoch
    resumed, result = _train(2, tmp_path / "b")
    assert result.resumed_from == 1
    assert len(result.history) == 2
    assert _same_weights(uninterrupted, resumed)


def test_resume_refuses_a_directory_of_another_config(tmp_path):
    _train(1, tmp_path, config={"lr": 0.05})
    with pytest.raises(CheckpointError, match="different config"):
        _train(2, tmp_path, config={"lr": 0.1})


def test_training_state_keeps_only_the_last_complete_epoch(tmp_path):
    _train(2, tmp_path)
    files = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert files == ["epoch-0002.json", "epoch-0002.safetensors", "last.json"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_state_round_trip_without_pickle():
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    optimizer = build_optimizer(model, "sgd", lr=0.1)
    model(torch.rand(4, 1, 8, 8)).sum().backward()
    optimizer.step()
    tensors: dict[str, torch.Tensor] = {}
    flat = flatten_state(optimizer.state_dict(), tensors, "opt")
    text = json.dumps(flat)  # everything but tensors is plain JSON
    restored = unflatten_state(json.loads(text), tensors)
    original = optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]
    for key, state in original["state"].items():
        assert torch.equal(restored["state"][key]["momentum_buffer"], state["momentum_buffer"])


def test_weights_round_trip_and_mismatch_error(tmp_path):
    model = create_model("resnet20", num_classes=10, in_channels=1)
    save_weights(tmp_path, model, {"epoch": 3})
    assert finished_weights(tmp_path) is not None
    other = create_model("resnet20", num_classes=10, in_channels=1)
    load_weights(tmp_path, other)
    assert _same_weights(model, other)
    wrong = create_model("se_resnet20", num_classes=10, in_channels=1)
    with pytest.raises(CheckpointError, match="does not match"):
        load_weights(tmp_path, wrong)


def test_corrupt_weights_file_is_a_clear_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_weights(tmp_path, model)


def test_onecycle_schedule_peaks_then_falls_to_zero():
    model = create_model("small_cnn", num_classes=10, in_channels=1)
    optimizer = build_optimizer(model, "sgd", lr=1.0)
    scheduler = build_scheduler(optimizer, "onecycle", epochs=1, steps_per_epoch=10)
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    peak = lrs.index(max(lrs))
    assert 2 <= peak <= 5
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)


def test_empty_state_directory_means_fresh_start(tmp_path):
    assert TrainingState(tmp_path).load() is None


def test_temperature_scaled_cross_entropy_keeps_the_t1_gradient_scale():
    # with the scaling, d loss / d logits = softmax(z / T) - onehot(y), as at T = 1
    logits = (torch.randn(8, 10) * 3).requires_grad_()
    labels = torch.randint(0, 10, (8,))

    class Fixed(torch.nn.Module):
        def forward(self, _):
            return logits

    images = torch.zeros(8, 1, 8, 8)
    loss = CrossEntropy(temperature=5.0, scale_by_temperature=True)(Fixed(), images, labels).loss
    (grad,) = torch.autograd.grad(loss, logits)
    expected = (torch.softmax(logits.detach() / 5.0, 1) - F.one_hot(labels, 10)) / len(labels)
    assert torch.allclose(grad, expected, atol=1e-6)
