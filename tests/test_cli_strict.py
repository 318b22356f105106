"""The strict command line of the console entry points: a bad override is one line, exit 2."""

from __future__ import annotations

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
