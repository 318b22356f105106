"""The strict command line of the console entry points: a bad override is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app_helpers import run_console


def _error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    ("command", "args", "bad", "suggestion"),
    [
        ("robustlab-train", ["train.epoch=2"], "train.epoch", "train.epochs"),
        ("robustlab-train", ["+train.epoch=2"], "train.epoch", "train.epochs"),
        ("robustlab-train", ["model=resnet21"], "model=resnet21", "model=resnet20"),
        ("robustlab-eval", ["defense=pgd"], "defense=pgd", "defense=pgd_at"),
        ("robustlab-detect", ["-m", "model=resnet20,resnet21"], "model=resnet21", "resnet20"),
    ],
    ids=["unknown-key", "force-added-key", "unknown-model", "unknown-defense", "sweep-job"],
)
def test_a_bad_override_is_one_line_and_exit_code_2(tmp_path, command, args, bad, suggestion):
    line = _error_line(run_console(command, *args, cwd=tmp_path))
    assert line.startswith("error: unknown") and bad in line and suggestion in line
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


def test_hydra_full_error_adds_the_traceback_after_the_line(tmp_path):
    proc = run_console("robustlab-train", "model=resnet21", cwd=tmp_path, HYDRA_FULL_ERROR="1")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: unknown option model=resnet21") and "Traceback" in lines[1]


def test_valid_overrides_pass_the_check(tmp_path):
    args = [
        "experiment=tiny",
        "defense=trades",
        "defense.beta=1.5",
        "+attack@eval.attacks.l2=pgd_l2",
    ]
    proc = run_console("robustlab-train", *args, "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "beta: 1.5" in proc.stdout and "steps: 2" in proc.stdout and "l2:" in proc.stdout


def test_every_experiment_composes_with_either_logger():
    # an experiment that names its W&B group must still run with logger=none (the documented
    # `scripts/study.sh logger=none`), and an error raised while merging a config file is one
    # line naming the key, not the first line of OmegaConf's message
    import inspect

    from robustlab.app.cli import check_command_line, error_line
    from robustlab.app.config_path import CONFIG_DIR
    from robustlab.app.schema import register_schemas
    from robustlab.app.train import _train

    register_schemas()
    task = inspect.unwrap(_train)
    experiments = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
    assert "tradeoff" in experiments
    for experiment in experiments:
        # the CIFAR-10 recipes read files: without a root they stop at one line (tested in
        # test_config), so give them one here
        root = ["data.root=/tmp"] if experiment.startswith("cifar10_") else []
        for logger in ("none", "wandb"):
            check_command_line(task, [f"experiment={experiment}", f"logger={logger}", *root])
    with pytest.raises(Exception) as caught:
        check_command_line(task, ["experiment=tradeoff", "explain=none", "+explain.k=3"])
    assert error_line(caught.value).startswith("unknown key explain.k")


def test_help_lists_options_not_their_schemas(tmp_path):
    proc = run_console("robustlab-eval", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("robustlab-eval is powered by Hydra.")
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "defense: distillation, fast_at," in groups and "trades" in groups
    assert "_schema" not in groups and "experiment_defense" not in groups


@pytest.mark.parametrize(
    "args",
    [
        ["defense=trades_schema"],
        ["-m", "defense=none,trades_schema"],
        ["+attack@eval.attacks.x=pgd_schema"],
    ],
    ids=["option", "sweep-choice", "added-option"],
)
def test_a_schema_entry_is_refused_like_an_unknown_option(args):
    import inspect

    from robustlab.app.cli import check_command_line, error_line
    from robustlab.app.schema import register_schemas
    from robustlab.app.train import _train

    register_schemas()
    with pytest.raises(Exception) as caught:
        check_command_line(inspect.unwrap(_train), args)
    line = error_line(caught.value)
    assert line.startswith("unknown option ") and "_schema: did you mean" in line, line
    assert "_schema," not in line.split("(options of")[1]
