"""Every shell command that README.md and docs/ tell a user to run runs here.

The blocks of one page section run in order, from a fresh working directory whose
``checkpoints/`` is the checkpoint store (``ROBUSTLAB_CHECKPOINTS``), with the environment's
``bin/`` first on PATH (what ``source .venv/bin/activate`` does). A command is run as the page
writes it, changed only by the markers above its block (tests/docs_commands.py: not run with a
reason, smaller settings appended with a reason, a placeholder's value, a first step) and by
sending a script's outputs into the working directory. Commands that name a path in the
checkout (``scripts/...``, ``source .venv/...``) run from the repository root, where the page
tells a user to be.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs_commands import (
    ALL_SHELL_BLOCKS,
    FIXTURES,
    PRELUDE,
    Command,
    ShellBlock,
    block_script,
    console_commands,
    logical_lines,
    runnable_text,
    sections,
    shell_blocks,
    visible_text,
)

BIN = Path(sys.executable).parent
SECTIONS = sections()
RUNNABLE = {
    name: blocks
    for name, blocks in SECTIONS.items()
    if any(not block.skip and any(not c.skip for c in block.commands) for block in blocks)
}
# a loaded 2-core machine runs several times slower than a quiet one
BLOCK_TIMEOUT_S = 1800


def _environment(tmp_path: Path, work: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"ROBUSTLAB_DATA", "PYTHONPATH", "HYDRA_FULL_ERROR", "WANDB_MODE"}
    }
    for folder in ("tmp", "cache", "config"):
        (tmp_path / folder).mkdir()
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ROBUSTLAB_CHECKPOINTS=str(work / "checkpoints"),
        ROBUSTLAB_PROGRESS="0",
        WANDB_SILENT="true",
        MPLBACKEND="Agg",
        TMPDIR=str(tmp_path / "tmp"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        WANDB_CONFIG_DIR=str(tmp_path / "config"),
    )
    return env


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )


def _timings(stderr: str) -> list[str]:
    """'seconds  command' per command, from the announcements of `block_script`."""
    marks = re.findall(r"^>>> \[(\w+)\] \[(\d+) s\] ?(.*)$", stderr, flags=re.M)
    return [
        f"{int(after[1]) - int(before[1]):5d} s  {before[2]}"
        for before, after in zip(marks, marks[1:], strict=False)
    ]


def _first_steps(block: ShellBlock, work: Path, env: dict[str, str]) -> None:
    for step in block.first:
        if step in FIXTURES:
            FIXTURES[step](work)
            continue
        done = _bash(f"{PRELUDE}\ncd {shlex.quote(str(work))}\n{step}\n", env)
        assert done.returncode == 0, f"{block.id}: first step {step!r}:\n{done.stderr[-3000:]}"


def _resolve(text: str, block: ShellBlock, work: Path) -> str:
    for name, pattern in block.substitutions.items():
        matches = [p for p in glob.glob(pattern, root_dir=work) if not p.endswith(".lock")]
        if name in text and len(matches) == 1:
            text = text.replace(name, matches[0])
    return text


def _run_console(block: ShellBlock, work: Path, env: dict[str, str]) -> list[str]:
    """Each ``$`` command; its output must hold the page's lines, and an ``error:`` line means
    the command line was refused (exit code 2)."""
    timings = []
    for command in block.commands:
        if command.skip:
            continue
        started = time.monotonic()
        text = runnable_text(command, block, work)
        done = _bash(f"{PRELUDE}\ncd {shlex.quote(str(work))}\n{text}\n", env)
        output = done.stdout + done.stderr
        for line in command.expected_output:
            assert _resolve(line, block, work) in output, f"{block.id}: {line!r} not in:\n{output}"
        refused = any(line.startswith("error:") for line in command.expected_output)
        assert done.returncode == (2 if refused else 0), f"{block.id}: {text}\n{output[-3000:]}"
        timings.append(f"{time.monotonic() - started:5.0f} s  {text}")
    return timings


@pytest.mark.slow
@pytest.mark.parametrize("section", list(RUNNABLE), ids=list(RUNNABLE))
def test_the_commands_of_a_page_section_run(section: str, tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(tmp_path, work)
    report = []
    for block in RUNNABLE[section]:
        if block.skip:
            continue
        _first_steps(block, work, env)
        if block.language == "console":
            report += _run_console(block, work, env)
            continue
        done = _bash(block_script(block, work), env)
        assert done.returncode == 0, (
            f"{block.id}: a command failed (the last '>>>' line names it):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-5000:]}"
        )
        report += _timings(done.stderr)
    print(f"{section}:", *report, sep="\n  ")


# ---------------------------------------------------------------------------------------------
# the pages' markers, checked without running anything


def test_the_pages_have_shell_commands_and_most_of_them_run():
    commands = [c for block in ALL_SHELL_BLOCKS for c in block.commands]
    run = [c for block in ALL_SHELL_BLOCKS if not block.skip for c in block.commands if not c.skip]
    assert len(commands) >= 40
    assert len(run) > len(commands) / 2
    assert any(block.path.name == "README.md" for block in ALL_SHELL_BLOCKS)
    assert any("torchrun" in c.text for c in run), "the torchrun lines must run"


@pytest.mark.parametrize(
    "block",
    [block for block in ALL_SHELL_BLOCKS if block.reasons],
    ids=[block.id for block in ALL_SHELL_BLOCKS if block.reasons],
)
def test_every_reason_is_in_the_page_text(block: ShellBlock):
    text = visible_text(block.path)
    for reason in block.reasons:
        said = " ".join(reason.replace("`", "").lower().split())
        assert said in text, f"{block.id}: the page does not say {said!r}"


def test_every_first_step_is_a_command_or_a_fixture():
    for block in ALL_SHELL_BLOCKS:
        for step in block.first:
            assert step in FIXTURES or step.startswith("robustlab-"), f"{block.id}: {step!r}"


def test_commands_split_at_lines_not_at_continuations_or_comments():
    code = "# a comment\nrobustlab-train a=1 \\\n    b=2   # trailing\n\nrobustlab-report x\n"
    assert logical_lines(code) == ["robustlab-train a=1 b=2   # trailing", "robustlab-report x"]
    console = "$ robustlab-eval x\nerror: no\n$ ls\n"
    assert console_commands(console) == [("robustlab-eval x", ("error: no",)), ("ls", ())]


def test_markers_change_only_what_they_name(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "## One\n\n<!-- not run `robustlab-train -m`: too long -->\n"
        "<!-- run `robustlab-eval` with `eval.suite=fast`: smaller -->\n"
        "<!-- run with DIR=checkpoints/* -->\n"
        "```bash\nrobustlab-train -m a=1,2\nrobustlab-eval paths.checkpoint=DIR  # eval 'it'\n"
        "scripts/study.sh\n```\n"
        "## Two\n\n<!-- not run: needs a GPU -->\n```console\n$ nvidia-smi\nGPU 0\n```\n"
    )
    first, second = shell_blocks(page)
    train, evaluate, study = first.commands
    assert train.skip == "too long" and evaluate.skip is None and study.skip is None
    assert (first.section, second.section, second.skip) == ("One", "Two", "needs a GPU")
    text = runnable_text(evaluate, first, tmp_path)
    assert text == (
        "robustlab-eval paths.checkpoint=\"$(one_match 'checkpoints/*')\" eval.suite=fast"
        "  # eval 'it'"
    )
    assert runnable_text(study, first, tmp_path) == (
        f"scripts/study.sh hydra.sweep.dir={tmp_path}/multirun/tradeoff"
    )
    assert study.in_checkout and not evaluate.in_checkout
    assert first.reasons == ["too long", "smaller"]
    page.write_text("<!-- not run `robustlab-detect`: x -->\n```bash\nls\n```\n")
    with pytest.raises(AssertionError, match="no command starts with"):
        shell_blocks(page)


def test_a_placeholder_is_one_existing_directory(tmp_path: Path):
    (tmp_path / "checkpoints" / "a-1").mkdir(parents=True)
    (tmp_path / "checkpoints" / "a-1.lock").touch()
    block = ShellBlock(
        tmp_path / "p.md",
        1,
        "bash",
        "",
        (Command("cat DIR/x"),),
        (),
        None,
        {"DIR": "checkpoints/a-*"},
    )
    (tmp_path / "checkpoints" / "a-1" / "x").write_text("found\n")
    done = subprocess.run(
        ["bash", "-c", block_script(block, tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == "found\n", done.stderr
    (tmp_path / "checkpoints" / "a-2").mkdir()
    done = subprocess.run(
        ["bash", "-c", block_script(block, tmp_path)], capture_output=True, text=True
    )
    assert done.returncode != 0 and "matches 2 paths" in done.stderr
