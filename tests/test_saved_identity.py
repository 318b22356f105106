"""robustlab-eval/-detect take the model, defense and seed from the checkpoint: a command line
that contradicts it is refused in one line, data of the same shape is honoured and recorded,
and the run directory is named after the checkpoint's model and defense."""

from __future__ import annotations

import pytest

from robustlab.app.saved_identity import saved_job_config
from robustlab.errors import ConfigError
from robustlab.loading import checkpoint_config
from tests.app_helpers import compose_tiny, job_results, run_console, saved_checkpoint

TINY = ["experiment=tiny", "detector=none", "logger=none"]


@pytest.fixture(scope="module")
def se_fast_at(tmp_path_factory):
    """An se_resnet20 / fast_at / seed 3 checkpoint on digits (untrained: identity only)."""
    root = tmp_path_factory.mktemp("saved")
    return saved_checkpoint(root / "ckpt", model="se_resnet20", defense="fast_at", seed=3)


def _one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def _refusal(argv: list[str], command: str = "eval") -> str:
    """The one error line the start-up check of ``robustlab-<command>`` gives ``argv``."""
    import inspect

    from robustlab.app.cli import check_command_line, error_line
    from robustlab.app.detect import _detect
    from robustlab.app.evaluate import _evaluate
    from robustlab.app.saved_model import check_saved_identity
    from robustlab.app.schema import register_schemas

    register_schemas()
    task = inspect.unwrap({"eval": _evaluate, "detect": _detect}[command])
    with pytest.raises(Exception) as caught:
        check_command_line(task, argv, check_job=check_saved_identity)
    return error_line(caught.value)


@pytest.mark.parametrize(
    ("command", "override", "trained"),
    [
        ("eval", "defense=trades", "defense=fast_at"),
        ("eval", "seed=0", "seed=3"),
        ("eval", "model.width=2", "model.width=null"),
        ("detect", "model=resnet20", "model=se_resnet20"),
    ],
)
def test_a_contradiction_is_refused(se_fast_at, command, override, trained):
    line = _refusal([*TINY, f"paths.checkpoint={se_fast_at}", override], command)
    assert line.startswith(f"{override} contradicts the checkpoint"), line
    assert f"trained with {trained}" in line


def test_the_command_line_refusal_is_one_line_and_exit_2(tmp_path, se_fast_at):
    args = [*TINY, f"paths.checkpoint={se_fast_at}", "model=resnet20"]
    line = _one_error_line(run_console("robustlab-eval", *args, cwd=tmp_path))
    assert line.startswith("error: model=resnet20 contradicts the checkpoint"), line
    assert "trained with model=se_resnet20" in line
    assert not (tmp_path / "outputs").exists(), "nothing runs for a refused command line"


def test_every_job_of_a_sweep_is_checked(se_fast_at):
    line = _refusal(["-m", *TINY, f"paths.checkpoint={se_fast_at}", "seed=3,4"])
    assert line.startswith("seed=4 contradicts"), line


def test_values_that_agree_with_the_checkpoint_pass(se_fast_at):
    import inspect

    from robustlab.app.cli import check_command_line
    from robustlab.app.evaluate import _evaluate
    from robustlab.app.saved_model import check_saved_identity

    agree = ["model=se_resnet20", "defense=fast_at", "seed=3", "data=digits"]
    argv = [*TINY, f"paths.checkpoint={se_fast_at}", *agree]
    check_command_line(inspect.unwrap(_evaluate), argv, check_job=check_saved_identity)


def test_data_of_another_shape_is_refused(se_fast_at):
    line = _refusal([*TINY, f"paths.checkpoint={se_fast_at}", "data=mnist5k"])
    assert line.startswith("data=mnist5k does not fit the checkpoint, trained on digits"), line
    assert "1x8x8" in line and "1x28x28" in line


def test_data_of_the_same_shape_is_honoured(tmp_path):
    saved = checkpoint_config(saved_checkpoint(tmp_path / "ckpt", model="small_cnn", data="mnist"))
    cfg = compose_tiny(tmp_path, "data=mnist5k", "data.batch_size=32")
    job = saved_job_config(cfg, saved, ["data=mnist5k", "data.batch_size=32"], checkpoint="c")
    assert job.data.name == "mnist5k" and job.data.batch_size == 32
    assert job.model.name == "small_cnn"
    # the same config without data= on the command line evaluates on the training data
    kept = saved_job_config(cfg, saved, [], checkpoint="c")
    assert kept.data.name == "mnist" and kept.data.max_train == 256


def test_data_keys_given_are_kept_and_a_defaults_choice_is_not_a_contradiction(tmp_path):
    saved = checkpoint_config(saved_checkpoint(tmp_path / "ckpt", model="resnet20", seed=5))
    # the composed config says seed 0 and model resnet20 by default: only what the command
    # line says is compared
    cfg = compose_tiny(tmp_path, "data.val_fraction=0.3")
    job = saved_job_config(cfg, saved, ["data.val_fraction=0.3"], checkpoint="c")
    assert job.seed == 5 and job.data.val_fraction == 0.3 and job.data.max_train == 256
    with pytest.raises(ConfigError, match="seed=0 contradicts"):
        saved_job_config(cfg, saved, ["seed=0"], checkpoint="c")


def test_run_directory_is_named_after_the_checkpoint(tmp_path, se_fast_at):
    args = [*TINY, f"paths.checkpoint={se_fast_at}", "--cfg", "all", "--resolve"]
    proc = run_console("robustlab-eval", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = next(line for line in proc.stdout.splitlines() if "dir: outputs/" in line)
    assert run_dir.endswith("_se_resnet20_fast_at"), run_dir


def test_sweep_job_names_carry_the_checkpoints_seed(se_fast_at, tmp_path):
    from robustlab.app.resolvers import run_name

    assert run_name(str(se_fast_at), "resnet20", "none", 0) == "se_resnet20_fast_at_s3"
    assert run_name(None, "resnet20", "none", 0) == "resnet20_none_s0"
    # an unreadable checkpoint keeps the config's names; the job reports it in one line
    assert run_name(str(tmp_path / "missing"), "resnet20", "none") == "resnet20_none"


def test_eval_on_another_data_set_records_both_and_the_loggers_mode(tmp_path):
    checkpoint = saved_checkpoint(
        tmp_path / "ckpt", model="small_cnn", defense="pgd_at", data="mnist"
    )
    args = ["experiment=tiny", "detector=none", f"paths.checkpoint={checkpoint}"]
    args += ["data=mnist5k", "eval.suite=none", "logger.mode=online"]
    # no W&B account here: the online run falls back to offline, and results.json says so
    no_account = {"HOME": str(tmp_path), "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}
    proc = run_console("robustlab-eval", *args, cwd=tmp_path, timeout=300, **no_account)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run] = list((tmp_path / "outputs").glob("*/*_small_cnn_pgd_at"))
    [results] = job_results(run)
    assert results["dataset"] == "mnist5k" and results["train_dataset"] == "mnist"
    assert results["model"] == "small_cnn" and results["defense"] == "pgd_at"
    assert 0.0 <= results["clean_accuracy"] <= 1.0
    assert results["logger_mode"].startswith("fell back to offline: "), results["logger_mode"]
