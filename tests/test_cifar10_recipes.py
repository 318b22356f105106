"""The CIFAR-10 recipes: exact eps, the published settings, their lr schedules, best and last
epoch, and a few steps of each on a tiny CIFAR-10 written in the official format."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch import nn

from robustlab.app.builders import build_defense
from robustlab.app.config_path import CONFIG_DIR
from robustlab.app.pipeline import run_pipeline
from robustlab.app.resolvers import frac
from robustlab.app.schema import register_schemas
from robustlab.app.training_stage import training_identity
from robustlab.app.validate import validate_config
from robustlab.data import load_dataset
from robustlab.data.cifar10 import write_cifar10_batches
from robustlab.errors import ConfigError, DataError
from robustlab.training import Monitor, build_scheduler, fit
from robustlab.training.objectives import CrossEntropy
from robustlab.training.robust_monitor import LAST_WEIGHTS, early_stopping, keep_last_weights
from robustlab.training.state_io import load_tensors
from tests.app_helpers import job_results, run_console
from tests.cifar10_files import write_tiny_cifar10

RECIPES = ("cifar10_fast_at", "cifar10_pgd_at", "cifar10_trades")
EPS = 8 / 255


@functools.cache
def compose_recipe(experiment: str, *overrides: str):
    """The recipe's config as the command line composes it (data under a placeholder root)."""
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[f"experiment={experiment}", "data.root=unused", *overrides],
        )
    GlobalHydra.instance().clear()
    validate_config(cfg)
    return cfg


def test_frac_is_python_division_and_refuses_nonsense():
    assert frac(8, 255) == 8 / 255 and repr(frac(8, 255)) == repr(8 / 255)
    assert frac(8, 255) != 0.031
    with pytest.raises(ConfigError, match="denominator is 0"):
        frac(8, 0)
    with pytest.raises(ConfigError, match="must be numbers"):
        frac("8", 255)
    node = OmegaConf.create({"eps": "${frac:16,255}"})
    register_schemas()
    assert node.eps == 16 / 255


@pytest.mark.parametrize("experiment", RECIPES)
def test_every_recipe_attacks_and_trains_at_exactly_8_255(experiment):
    cfg = compose_recipe(experiment)
    assert list(cfg.eval.eps) == [EPS] and cfg.defense.eps == EPS
    assert cfg.eval.suite == "standard" and cfg.eval.max_examples is None
    assert cfg.data.name == "cifar10" and cfg.detector.name == "none"
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert json.loads(json.dumps(plain))["eval"]["eps"] == [EPS]  # survives results.json
    files = [Path(CONFIG_DIR) / "experiment" / f"{experiment}.yaml"]
    files += sorted((Path(CONFIG_DIR) / "experiment_defense" / experiment).glob("*.yaml"))
    assert len(files) == 2  # no value written as a rounded decimal (comments may name 0.031)
    assert not [f for f in files if re.search(r"[:\[,]\s*0\.03\d", f.read_text())]


def test_the_recipes_carry_the_published_settings():
    fast = compose_recipe("cifar10_fast_at")
    assert (fast.model.name, fast.train.epochs, fast.train.scheduler) == (
        "preact_resnet18",
        15,
        "cyclic",
    )
    assert fast.train.lr == 0.2 and fast.train.amp and fast.defense.name == "fast_at"
    assert fast.defense.step_size * fast.defense.eps == pytest.approx(10 / 255, rel=1e-12)
    pgd = compose_recipe("cifar10_pgd_at")
    assert (pgd.train.epochs, pgd.train.lr, list(pgd.train.milestones)) == (200, 0.1, [100, 150])
    assert (pgd.defense.steps, pgd.defense.step_size * pgd.defense.eps) == (10, 2 / 255)
    assert pgd.defense.monitor_heldout and pgd.defense.heldout_steps == 10
    trades = compose_recipe("cifar10_trades")
    assert (trades.model.name, trades.defense.beta, trades.train.weight_decay) == (
        "wrn34_10",
        6.0,
        2e-4,
    )
    assert (trades.train.epochs, list(trades.train.milestones)) == (100, [75, 90])


def _lrs(name: str, epochs: int, steps: int, **kw) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.2)
    scheduler = build_scheduler(optimizer, name, epochs, steps, **kw)
    lrs = []
    for _ in range(epochs * steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_cyclic_schedule_is_fast_adversarial_trainings_interpolation():
    epochs, steps = 15, 7
    lrs = _lrs("cyclic", epochs, steps)
    # their code: lr at iteration i of epoch e = interp(e + (i + 1) / steps, [0, 6, 15], [0, .2, 0])
    t = np.arange(1, epochs * steps + 1) / steps
    assert np.allclose(lrs, np.interp(t, [0, epochs * 2 // 5, epochs], [0, 0.2, 0]), atol=1e-9)


def test_piecewise_schedule_divides_at_the_milestone_epochs():
    lrs = _lrs("piecewise", 6, 3, epoch_milestones=[2, 4], gamma=0.1)
    per_epoch = [lrs[e * 3 : e * 3 + 3] for e in range(6)]
    expected = [0.2, 0.2, 0.02, 0.02, 0.002, 0.002]
    for values, lr in zip(per_epoch, expected, strict=True):
        assert values == pytest.approx([lr] * 3)
    with pytest.raises(ConfigError, match="only apply to the piecewise"):
        _lrs("cosine", 2, 1, epoch_milestones=[1])
    with pytest.raises(ConfigError, match="ascending"):
        _lrs("piecewise", 2, 1, epoch_milestones=[3, 2])


class _Scripted:
    """A held-out metric that peaks at epoch 2 of 4: the best epoch is not the last."""

    def __init__(self):
        self.values = iter([0.2, 0.6, 0.5, 0.3])

    def on_epoch_end(self, epoch, model):
        return {"heldout_pgd_accuracy": next(self.values), "heldout_clean_accuracy": 0.9}


class _Batches:
    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=generator)
        self.y = (self.x[:, 0] > 0).long()

    def __iter__(self):
        return iter([(self.x, self.y)])

    def __len__(self):
        return 1

    def set_epoch(self, epoch):
        pass


def _fit_linear(directory: Path, monitor: Monitor | None):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    callbacks = [_Scripted()] if monitor else []
    result = fit(
        model,
        _Batches(),
        CrossEntropy(),
        optimizer,
        epochs=4,
        checkpoint_dir=directory,
        callbacks=callbacks,
        monitor=monitor,
    )
    return model, result


def test_best_epoch_is_kept_and_the_last_written_beside_it(tmp_path):
    model, result = _fit_linear(tmp_path / "monitored", Monitor("heldout_pgd_accuracy"))
    stopping = early_stopping(result.history)
    assert result.best_epoch == 2 and stopping.best["epoch"] == 2 and stopping.last["epoch"] == 4
    assert stopping.best["heldout_pgd_accuracy"] == 0.6
    assert stopping.last["heldout_pgd_accuracy"] == 0.3
    path = keep_last_weights(tmp_path / "monitored")
    assert path == tmp_path / "monitored" / LAST_WEIGHTS
    last = load_tensors(path)
    best = load_tensors(tmp_path / "monitored" / "state" / "best.safetensors")
    # fit gave back the best epoch; last.safetensors holds what 4 epochs trained (the same run
    # without a monitor ends with exactly these weights)
    assert torch.equal(best["weight"], model.weight.detach())
    unmonitored, _ = _fit_linear(tmp_path / "plain", None)
    assert torch.equal(last["weight"], unmonitored.weight.detach())
    assert not torch.equal(last["weight"], best["weight"])
    assert early_stopping([{"loss": 1.0}]) is None
    assert keep_last_weights(tmp_path / "nothing") is None


def test_tiny_cifar10_files_read_back_in_the_official_layout(tmp_path):
    write_tiny_cifar10(tmp_path, per_batch=20, test=10)
    x, y = load_dataset("cifar10", root=tmp_path, split="train")
    xt, yt = load_dataset("cifar10", root=tmp_path, split="test")
    assert x.shape == (100, 3, 32, 32) and xt.shape == (10, 3, 32, 32)
    assert y.tolist() == [i % 10 for i in range(20)] * 5 and yt.tolist() == list(range(10))
    folder = tmp_path / "cifar-10-batches-py"
    assert (folder / "batches.meta").is_file() and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0


def test_written_batches_read_back_exactly_through_the_restricted_unpickler(tmp_path):
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    # float images in [0, 1] are stored as the 8-bit pixels they stand for
    write_cifar10_batches(tmp_path, (images.float() / 255, labels), (images[:2], labels[:2]))
    x, y = load_dataset("cifar10", root=tmp_path, split="train")
    assert torch.equal(x, images.float() / 255) and torch.equal(y, labels)
    with pytest.raises(DataError, match=r"\[N, 3, 32, 32\]"):
        write_cifar10_batches(tmp_path, (images[:, :1], labels), (images, labels))


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    return write_tiny_cifar10(tmp_path_factory.mktemp("cifar10"))


# the recipes' own models, shrunk in data, steps and evaluation: the worst-case suite costs
# hundreds of passes per robust example (about 4 minutes on 10 examples of PreActResNet-18 on
# this CPU), so these runs evaluate with short PGDs only; the suite has tests of its own
TINY_EVAL = (
    "eval.max_examples=10",
    "eval.suite=none",
    "eval.attacks.pgd.steps=2",
    "eval.attacks.pgd_margin.steps=2",
    "eval.large_eps=null",
    "logger=none",
)


@pytest.mark.slow
def test_robustlab_train_runs_the_fast_at_recipe_on_the_cpu(tiny_cifar, tmp_path):
    done = run_console(
        "robustlab-train", "experiment=cifar10_fast_at", "train.epochs=1", "data.max_train=64",
        f"data.root={tiny_cifar}", "data.val_fraction=0.2", "defense.heldout_size=8",
        "defense.heldout_steps=2", *TINY_EVAL, f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (payload,) = job_results(tmp_path / "run")
    assert payload["model"] == "preact_resnet18" and payload["defense"] == "fast_at"
    assert list(payload["robust_accuracy"]["worst_case"]) == [repr(EPS)]
    assert payload["early_stopping"]["best"]["epoch"] == 1


@pytest.mark.slow
def test_pgd_at_recipe_reports_best_and_last_epoch(tiny_cifar, tmp_path):
    cfg = compose_recipe(
        "cifar10_pgd_at", "train.epochs=2", "data.max_train=32", f"data.root={tiny_cifar}",
        "data.val_fraction=0.2", "defense.steps=2", "defense.heldout_size=8",
        "defense.heldout_steps=2", f"paths.checkpoints={tmp_path / 'checkpoints'}", *TINY_EVAL,
    )  # fmt: skip
    payload = run_pipeline(cfg, tmp_path / "run")
    stopping = payload["early_stopping"]
    assert stopping["last"]["epoch"] == 2 and stopping["best"]["epoch"] in (1, 2)
    assert payload["training_cost"]["best_epoch"] == stopping["best"]["epoch"]
    directory = Path(payload["checkpoint"])
    assert Path(stopping["last_weights"]) == directory / LAST_WEIGHTS
    assert set(load_tensors(directory / LAST_WEIGHTS)) == set(
        load_tensors(directory / "model.safetensors")
    )
    assert list(payload["robust_accuracy"]["worst_case"]) == [repr(EPS)]


@pytest.mark.slow
def test_trades_recipe_runs_with_a_narrow_wide_resnet(tiny_cifar, tmp_path):
    # WRN-34-10 itself takes 10-18 s per forward+backward of 16 images on this 2-core CPU and a
    # TRADES step is 12 of them: the recipe runs here with widen_factor 1 (WRN-34-1), same depth
    cfg = compose_recipe(
        "cifar10_trades", "model.widen_factor=1", "train.epochs=1", "data.max_train=32",
        f"data.root={tiny_cifar}", "data.val_fraction=0.2", "defense.steps=2",
        f"paths.checkpoints={tmp_path / 'checkpoints'}", *TINY_EVAL,
    )  # fmt: skip
    payload = run_pipeline(cfg, tmp_path / "run")
    assert payload["model"] == "wrn34_10" and payload["defense"] == "trades"
    assert payload["training_cost"]["epochs"] == 1 and "early_stopping" not in payload
    assert list(payload["robust_accuracy"]["worst_case"]) == [repr(EPS)]


def test_new_train_keys_leave_earlier_checkpoints_where_they_were():
    # the keys the recipes added identify a run only when set: the default config's checkpoint
    # directory is the one it had before them, a piecewise schedule's milestones are part of it
    default = compose_recipe("tiny", "data.root=null")
    recipe = compose_recipe("cifar10_pgd_at")
    ids = [
        training_identity(cfg, "model", build_defense(cfg.defense).objective(), 1)["train"]
        for cfg in (default, recipe)
    ]
    assert not {"milestones", "lr_gamma", "compile"} & set(ids[0])
    assert ids[1]["milestones"] == [100, 150] and "compile" not in ids[1]
