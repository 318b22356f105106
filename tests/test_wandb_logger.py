"""The W&B logger: offline files carry the results, and W&B failures never fail a run."""

from __future__ import annotations

import time

from robustlab.tracking.results import summary_metrics
from robustlab.tracking.wandb_logger import WandbLogger

RESULTS = {
    "clean_accuracy": 0.97,
    "params": 272186,
    "robust_accuracy": {"pgd": {"0.1": 0.5, "0.2": 0.01}, "cw": {"inf": 0.1}},
    "detection": {"pgd@0.1": {"auroc": 0.97, "tnr_at_tpr95": 0.9}},
    "timing_s": {"train": 4.0},
    "training_cost": {"grad_evals_per_example": 15.0},
    "warnings": ["gradient masking suspected: ..."],
}


def test_summary_metrics_are_flat_scalars_for_parallel_coordinates():
    summary = summary_metrics(RESULTS)
    assert summary["robust_accuracy/pgd@0.1"] == 0.5
    assert summary["robust_accuracy/cw@inf"] == 0.1
    assert summary["detection/pgd@0.1/auroc"] == 0.97
    assert summary["training_cost/grad_evals_per_example"] == 15.0
    assert summary["n_warnings"] == 1
    assert all(isinstance(v, (int, float)) for v in summary.values())


def test_offline_run_records_curves_results_and_checkpoint_artifact(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.json").write_text("{}")
    logger = WandbLogger(
        "robustlab-test",
        {"seed": 0},
        mode="offline",
        group="sweep-x",
        directory=tmp_path,
        log_checkpoints=True,
    )
    assert logger.active
    logger.log_epoch({"loss": 1.5, "epoch": 1})
    logger.log_results(RESULTS)
    logger.log_checkpoint(checkpoint, name="resnet20-none-s0")
    logger.finish(0)
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    keys = (b"train/loss", b"robust_accuracy/pgd@0.1", b"sweep-x", b"resnet20-none-s0")
    data = transaction_log(runs[0], keys)
    for key in keys:
        assert key in data


def transaction_log(path, keys, timeout_s: float = 30.0) -> bytes:
    """The run's .wandb file once it holds ``keys``, or as it is after ``timeout_s``: W&B's
    service process writes it on its own after ``finish`` returns (a process that exits at
    once still leaves it complete), so on a busy machine it can lag the call."""
    deadline = time.monotonic() + timeout_s
    while True:
        data = path.read_bytes()
        if all(key in data for key in keys) or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def test_a_failing_wandb_turns_the_logger_into_a_no_op(tmp_path, monkeypatch):
    import wandb

    def refuse(**_):
        raise RuntimeError("no network, no API key")

    monkeypatch.setattr(wandb, "init", refuse)
    logger = WandbLogger("robustlab-test", {}, mode="online", directory=tmp_path)
    assert not logger.active
    assert logger.mode == "disabled: RuntimeError: no network, no API key"
    logger.log_epoch({"loss": 1.0})
    logger.log_results(RESULTS)
    logger.finish(1)


def test_online_without_an_account_falls_back_to_offline_and_says_why(tmp_path, monkeypatch):
    # no API key anywhere W&B looks: the environment, ~/.netrc, its settings folder
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger("robustlab-test", {"seed": 0}, mode="online", directory=tmp_path)
    assert logger.active and logger.offline_dir is not None
    assert logger.mode.startswith("fell back to offline: "), logger.mode
    assert "API key" in logger.mode and "\n" not in logger.mode
    logger.log_results(RESULTS)
    logger.finish(0)
    assert list(logger.offline_dir.glob("run-*.wandb")), "the numbers are kept offline"


def test_the_mode_of_a_run_that_started_is_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger("robustlab-test", {}, mode="offline", directory=tmp_path)
    assert logger.mode == "offline"
    logger.finish(0)
    assert WandbLogger("p", {}, mode="disabled").mode == "disabled"


def test_disabled_logger_starts_nothing(tmp_path):
    logger = WandbLogger("robustlab-test", {}, mode="disabled", directory=tmp_path)
    assert not logger.active
    logger.log_results(RESULTS)
    logger.finish()
    assert not (tmp_path / "wandb").exists()


def test_an_offline_run_says_where_it_is_and_logs_eps_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger("robustlab-test", {"seed": 0}, mode="offline", directory=tmp_path)
    assert logger.offline_dir.parent == tmp_path / "wandb"
    assert logger.offline_dir.name.startswith("offline-run-")
    logger.log_results({**RESULTS, "robust_accuracy_norm": {"pgd": "Linf", "cw": "L2"}})
    logger.finish(0)
    data = transaction_log(next(logger.offline_dir.glob("run-*.wandb")), [b"robust_vs_eps"])
    assert b"robust_vs_eps/Linf/eps" in data and b"robust_vs_eps/Linf/pgd" in data
    assert WandbLogger("p", {}, mode="disabled").offline_dir is None


def test_a_sweep_group_is_the_experiment_and_the_sweep_start(tmp_path, monkeypatch):
    import datetime as dt
    import os

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from robustlab.app import job_logger

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("{}")
    started = dt.datetime(2026, 12, 2, 6, 17, 40).timestamp()
    os.utime(sweep / "multirun.yaml", (started, started))
    hydra = {
        "mode": RunMode.MULTIRUN,
        "sweep": {"dir": str(sweep)},
        "runtime": {"choices": {"experiment": "tradeoff"}},
    }
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: OmegaConf.create(hydra)))
    assert job_logger.sweep_group(OmegaConf.create({"logger": {"group": None}})) == (
        "tradeoff-2026-12-02-0617"
    )
    named = OmegaConf.create({"logger": {"group": "trades_beta"}})
    assert job_logger.sweep_group(named) == "trades_beta-2026-12-02-0617"
