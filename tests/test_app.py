"""The Hydra entry points end to end on digits: train+eval, evaluate a checkpoint, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.app_helpers import job_results, run_entry

TINY = ["experiment=tiny", "detector=none"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    proc = run_entry("train", *TINY, "hydra.run.dir=run", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root, job_results(root / "run")[0]


def test_train_writes_the_results_contract(trained_run):
    _, results = trained_run
    assert results["status"] == "ok"
    assert results["dataset"] == "digits" and results["model"] == "resnet20"
    assert results["defense"] == "none" and results["seed"] == 0
    assert results["params"] > 200_000
    assert 0.0 <= results["clean_accuracy"] <= 1.0
    assert set(results["robust_accuracy"]) == {"worst_case", "fgsm", "pgd", "pgd_margin"}
    assert list(results["robust_accuracy"]["pgd"]) == ["0.1"]
    # the per-example worst case is never above any single attack
    worst = results["robust_accuracy"]["worst_case"]["0.1"]
    assert all(worst <= curve["0.1"] for curve in results["robust_accuracy"].values())
    assert results["schema_version"] == 2 and results["worst_case"]["suite"] == "fast"
    record = json.loads((trained_run[0] / "run" / "worst_case_examples.json").read_text())
    assert len(record["broken_eps"]) == results["n_eval"]
    assert results["attack_schedule"] == {
        "fgsm": "full",
        "pgd": "continuation",
        "pgd_margin": "continuation",
    }
    assert {"train", "evaluate"} <= set(results["timing_s"])
    assert isinstance(results["warnings"], list)
    assert results["logger_mode"] == "offline"


def test_wandb_offline_run_carries_the_summary(trained_run):
    root, _ = trained_run
    runs = list((root / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    data = runs[0].read_bytes()
    for key in (b"clean_accuracy", b"robust_accuracy/pgd@0.1", b"train/loss"):
        assert key in data


def test_eval_entry_reproduces_the_pipeline_numbers(trained_run):
    root, results = trained_run
    proc = run_entry(
        "eval",
        *TINY,
        "logger=none",
        f"paths.checkpoint={results['checkpoint']}",
        "hydra.run.dir=eval",
        "eval.schedule=full",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = job_results(root / "eval")[0]
    assert evaluated["logger_mode"] == "disabled"  # logger=none
    assert evaluated["clean_accuracy"] == results["clean_accuracy"]
    assert evaluated["robust_accuracy"]["fgsm"] == results["robust_accuracy"]["fgsm"]
    assert evaluated["attack_schedule"]["pgd"] == "full"


def test_rerun_reuses_the_finished_checkpoint(trained_run):
    root, results = trained_run
    proc = run_entry("train", *TINY, "logger=none", "hydra.run.dir=again", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = job_results(root / "again")[0]
    assert again["training_cost"]["reused_checkpoint"] is True
    assert again["checkpoint"] == results["checkpoint"]
    assert again["clean_accuracy"] == results["clean_accuracy"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [("eval.eps=[-0.1]", "out of range"), ("train.optimizer=adagrad", "choose one of")],
)
def test_bad_value_exits_non_zero_with_one_line(tmp_path, override, expected):
    proc = run_entry("train", *TINY, "logger=none", override, cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0]
    assert not (tmp_path / "checkpoints").exists(), "nothing is trained for a bad config"


def test_unknown_key_fails_at_start_up(tmp_path):
    proc = run_entry("train", "train.epochz=3", cwd=tmp_path)
    assert proc.returncode != 0
    assert "epochz" in proc.stderr.splitlines()[0]


def test_missing_data_file_is_one_clear_error(tmp_path):
    proc = run_entry(
        "train", *TINY, "logger=none", "data=mnist", f"data.root={tmp_path}", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "train-images-idx3-ubyte" in proc.stderr


def test_eval_without_checkpoint_is_a_clear_error(tmp_path):
    proc = run_entry("eval", *TINY, "logger=none", cwd=tmp_path)
    assert proc.returncode == 2
    assert "paths.checkpoint" in proc.stderr


@pytest.mark.parametrize(
    "package",
    [
        "robustlab.attacks",
        "robustlab.models",
        "robustlab.detection",
        "robustlab.training",
        "robustlab.data",
    ],
)
def test_library_imports_no_app_frameworks(package):
    code = (
        f"import sys, {package}; "
        "bad = [m for m in ('hydra', 'omegaconf', 'wandb', 'torchvision') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
