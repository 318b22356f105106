"""run_pipeline from plain Python, and robustlab.load_checkpoint on what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import robustlab
from robustlab.app.pipeline import run_pipeline
from robustlab.data import load_dataset, stratified_subset
from robustlab.errors import CheckpointError
from robustlab.models.inference import predict
from tests.app_helpers import compose_tiny


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plain")
    cfg = compose_tiny(root)
    return cfg, run_pipeline(cfg, root / "run"), root


def test_run_pipeline_runs_outside_hydra_and_writes_results(pipeline_run):
    cfg, payload, root = pipeline_run
    written = json.loads((root / "run" / "results.json").read_text())
    assert written == payload and payload["status"] == "ok" and payload["schema_version"] == 2
    assert payload["overrides"] == [] and payload["job_dir"] == str(root / "run")
    assert {"train", "evaluate"} == set(payload["timing_s"])


def test_load_checkpoint_rebuilds_the_trained_model(pipeline_run):
    cfg, payload, _ = pipeline_run
    model = robustlab.load_checkpoint(payload["checkpoint"])
    assert not model.training and next(model.parameters()).device.type == "cpu"
    images, labels = stratified_subset(
        *load_dataset("digits", split="test"), cfg.eval.max_examples, seed=cfg.seed
    )
    accuracy = float((predict(model, images) == labels).float().mean())
    assert accuracy == pytest.approx(payload["clean_accuracy"])


def test_load_checkpoint_imports_no_app_framework(pipeline_run):
    _, payload, _ = pipeline_run
    code = (
        "import sys, robustlab; robustlab.load_checkpoint(sys.argv[1]); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'hydra', 'omegaconf', 'wandb'}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, payload["checkpoint"]], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.strip() == "[]"


def test_a_bad_or_foreign_directory_is_one_checkpoint_error(pipeline_run, tmp_path):
    _, payload, _ = pipeline_run
    with pytest.raises(CheckpointError, match="does not exist"):
        robustlab.load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="no finished checkpoint"):
        robustlab.load_checkpoint(tmp_path)
    weights = (Path(payload["checkpoint"]) / "model.safetensors").read_bytes()
    for name, text in [
        ("corrupt", "{not json"),
        ("foreign", json.dumps({"config": {"model": {"_target_": "os.system", "name": "x"}}})),
        ("no config", json.dumps([1, 2])),
    ]:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "model.safetensors").write_bytes(weights)
        (directory / "model.json").write_text(text)
        with pytest.raises(CheckpointError):
            robustlab.load_checkpoint(directory)
