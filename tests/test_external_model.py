"""``robustlab-eval model=external``: a model robustlab did not train, from a factory and a weights
file or from a saved whole model; robustlab.load_checkpoint on run directories and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import robustlab
from robustlab.app.evaluate import run_evaluation
from robustlab.app.external_model import build_external_model, import_factory
from robustlab.app.pipeline import run_pipeline
from robustlab.data import dataset_info, load_dataset, stratified_subset
from robustlab.errors import CheckpointError, ConfigError
from robustlab.loading import load_state_dict_into, read_state_dict
from robustlab.models import create_model
from robustlab.models.inference import predict
from robustlab.training.checkpoint import save_weights
from tests.app_helpers import compose_tiny, job_results, run_console
from tests.external_models import fitted_mlp, mlp

ROOT = Path(__file__).resolve().parents[1]
FACTORY = "model.factory=tests.external_models:mlp"
# experiment=tiny without its suite: the model and the wiring are under test, not the attacks
FAST = ["experiment=tiny", "detector=none", "logger=none", "eval.suite=none"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A fitted mlp, its weights as a DataParallel-style .pt checkpoint, and its statistics."""
    images, labels = load_dataset("digits", split="train")
    model = fitted_mlp(images, labels)
    mean, std = float(images.mean()), float(images.std())
    path = tmp_path_factory.mktemp("weights") / "mlp.pt"
    wrapped = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save({**wrapped, "epoch": 3}, path)
    return model, path, mean, std


def external(**keys) -> object:
    cfg = compose_tiny(Path("/nonexistent"), "model=external")
    for key, value in keys.items():
        cfg.model[key] = value
    return cfg.model


def test_robustlab_eval_scores_an_external_model_from_the_command_line(trained, tmp_path):
    model, path, mean, std = trained
    proc = run_console(
        "robustlab-eval", "model=external", FACTORY, "+model.kwargs.width=8",
        f"model.weights={path}", f"model.mean=[{mean}]", f"model.std=[{std}]", *FAST,
        cwd=tmp_path, timeout=300, PYTHONPATH=str(ROOT),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = job_results(tmp_path / "outputs")
    images, labels = stratified_subset(*load_dataset("digits", split="test"), 64, seed=0)
    expected = (predict(model, (images - mean) / std) == labels).float().mean()
    assert results["model"] == "external" and results["checkpoint"] == str(path)
    assert results["clean_accuracy"] == pytest.approx(float(expected)) and expected > 0.8
    pgd = results["robust_accuracy"]["pgd"]["0.1"]
    assert pgd < results["clean_accuracy"]
    assert results["robust_accuracy"]["worst_case"]["0.1"] <= pgd


def test_a_bad_factory_is_one_line_and_exit_2(tmp_path):
    proc = run_console(
        "robustlab-eval", "model=external", "model.factory=tests.no_such_module:mlp", *FAST,
        cwd=tmp_path, PYTHONPATH=str(ROOT),
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: model.factory: cannot import 'tests.no_such_module'")


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["model.factory=tests.external_models"], ConfigError, "is not pkg.module:function"),
        ([FACTORY, "model.weights=missing.pt"], CheckpointError, "no weights file at missing.pt"),
        ([FACTORY, "model.weights=WEIGHTS"], CheckpointError, r"shape 1.weight \(8, 64\) vs"),
        ([FACTORY, "model.file=m.pt2"], ConfigError, "needs one of model.factory"),
        ([FACTORY, "model.width=8"], ConfigError, r"\+model.kwargs.width=VALUE"),
        (["model=resnet20", "model.weights=w.pt"], ConfigError, "resnet20 has no option weights"),
        ([FACTORY, "paths.checkpoint=ckpt"], ConfigError, "drop paths.checkpoint"),
    ],
    ids=["no-function", "missing-weights", "mismatch", "two-sources", "foreign", "not-ext", "ckpt"],
)
def test_each_bad_external_setting_is_one_error(trained, tmp_path, args, error, message):
    # the weights are an 8-wide mlp's: the factory's default width (16) gives other shapes
    args = [a.replace("WEIGHTS", str(trained[1])) for a in args]
    cfg = compose_tiny(tmp_path, "model=external", *args, *FAST[1:])
    with pytest.raises(error, match=message):
        run_evaluation(cfg, tmp_path / "run")


def test_weights_files_unwrap_and_mismatches_are_named(trained, tmp_path):
    model, path, _, _ = trained
    state = read_state_dict(path)
    assert set(state) == set(model.state_dict())  # state_dict key and module. prefix gone
    save_file(model.state_dict(), tmp_path / "mlp.safetensors")
    for source in (path, tmp_path / "mlp.safetensors"):
        fresh = mlp(8)
        load_state_dict_into(fresh, read_state_dict(source), str(source))
        assert all(
            torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(), strict=True)
        )
    with pytest.raises(CheckpointError, match=r"shape 1.weight \(8, 64\) vs \(16, 64\)"):
        load_state_dict_into(mlp(16), state, "mlp.pt")
    with pytest.raises(CheckpointError, match=r"unexpected 3.weight"):
        load_state_dict_into(mlp(8)[:2], state, "mlp.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read weights from"):
        read_state_dict(tmp_path / "junk.pt")


def test_a_factory_that_is_not_a_model_is_refused():
    assert import_factory("tests.external_models:mlp") is mlp
    with pytest.raises(ConfigError, match="has no 'nothing'"):
        import_factory("tests.external_models:nothing")
    with pytest.raises(ConfigError, match="not callable"):
        import_factory("tests.external_models:NOT_A_MODEL")
    with pytest.raises(ConfigError, match="refused model.kwargs"):
        build_external_model(external(factory="tests.external_models:mlp", kwargs={"depth": 2}),
                             dataset_info("digits"), torch.device("cpu"))  # fmt: skip
    with pytest.raises(ConfigError, match="returns 3 logits but data=digits has 10"):
        build_external_model(external(factory="tests.external_models:mlp",
                                      kwargs={"num_classes": 3}),
                             dataset_info("digits"), torch.device("cpu"))  # fmt: skip


@pytest.mark.parametrize("suffix", [".pt2", ".ts"])
def test_torch_export_and_torchscript_files_are_models(trained, tmp_path, suffix):
    model = trained[0]
    path = tmp_path / f"mlp{suffix}"
    example = torch.rand(4, 1, 8, 8)
    if suffix == ".pt2":
        batch = torch.export.Dim("batch")
        torch.export.save(
            torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), path
        )
    else:
        torch.jit.script(model).save(str(path))
    loaded = build_external_model(external(file=str(path)), dataset_info("digits"), "cpu")
    assert torch.allclose(loaded(example), model(example), atol=1e-6)
    # attacks can put the model in eval mode and differentiate through it
    adv = robustlab.attacks.PGD(loaded, eps=0.1, alpha=0.05, steps=2)(example, torch.arange(4))
    assert adv.shape == example.shape and not torch.equal(adv, example)


def test_load_checkpoint_follows_a_run_directory_and_a_weights_file(tmp_path):
    model = create_model("small_cnn", 10, 1, mean=[0.3], std=[0.4]).eval()
    config = {"model": {"name": "small_cnn"}, "data": {"name": "digits"}}
    weights = save_weights(tmp_path / "checkpoints" / "abc", model, {"config": config})
    run = tmp_path / "outputs" / "day" / "run"
    run.mkdir(parents=True)
    # results.json names the checkpoint relative to where the job ran (here: tmp_path)
    (run / "results.json").write_text(json.dumps({"checkpoint": "checkpoints/abc"}))
    x = torch.rand(3, 1, 8, 8)
    for source in (run, run / "results.json", weights, weights.parent):
        assert torch.equal(robustlab.load_checkpoint(source)(x), model(x)), source
    (run / "results.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(CheckpointError, match="names no checkpoint"):
        robustlab.load_checkpoint(run)


def test_robustlab_train_refuses_an_external_model(tmp_path):
    cfg = compose_tiny(tmp_path, "model=external", FACTORY, *FAST[1:])
    with pytest.raises(ConfigError, match="run robustlab-eval model=external"):
        run_pipeline(cfg, tmp_path / "run")
