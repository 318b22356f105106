"""Every ```python block of README.md and docs/**/*.md runs here, one test per block.

Each block runs in a fresh namespace, from a fresh temporary working directory, with
ROBUSTLAB_PROGRESS=0, one torch thread and torch seeded with 0. A block that reads
``runs/tiny/results.json`` gets the tiny run of the getting-started page: its
``robustlab-train`` command (the one with ``hydra.run.dir=runs/tiny``) runs once per session
and its ``runs/`` and ``checkpoints/`` are linked into the block's directory.

A block that cannot run here (a GPU, a data set download, W&B online, a long measurement) has
``<!-- not run: REASON -->`` as the last line above it, and the page says the same reason in
its text; the test skips it with that reason. The shell blocks (bash, console) run in
tests/test_docs_commands.py, with the same marker for a block that cannot run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(.+?)\s*-->\s*$")
TINY_RUN = "runs/tiny"
README_MAX_LINES = 250


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page: where it starts, its language, code and skip reason."""

    path: Path
    line: int
    language: str
    code: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path``; indented blocks (inside list items) are dedented."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, start, above = [], None, None
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if match is None:
            continue
        if start is None:
            indent, language, start = match.group(1), match.group(2), number
            previous = [text for text in lines[: number - 1] if text.strip()]
            above = NOT_RUN.match(previous[-1]) if previous else None
        elif match.group(1) == indent and not match.group(2):
            body = [text[len(indent) :] for text in lines[start : number - 1]]
            reason = above.group(1) if above else None
            blocks.append(Block(path, start, language, "\n".join(body) + "\n", reason))
            start = None
    assert start is None, f"{path.relative_to(ROOT)}:{start}: code fence never closed"
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in code_blocks(path)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.language == "python"]


def visible_text(path: Path) -> str:
    """The page without HTML comments and backticks, lower-cased, whitespace collapsed."""
    text = re.sub(r"<!--.*?-->", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(text.replace("`", "").lower().split())


def tiny_run_command() -> list[str]:
    """The getting-started page's tiny ``robustlab-train`` command, as pytest runs it."""
    for block in ALL_BLOCKS:
        for line in block.code.splitlines():
            if line.startswith("robustlab-train") and f"hydra.run.dir={TINY_RUN}" in line:
                return [sys.executable, "-m", "robustlab.app.train", *shlex.split(line)[1:]]
    raise AssertionError(f"no robustlab-train command with hydra.run.dir={TINY_RUN} in the docs")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``runs/tiny`` and ``checkpoints/`` of the docs' tiny run."""
    root = tmp_path_factory.mktemp("tiny_run")
    env = dict(os.environ, ROBUSTLAB_PROGRESS="0", WANDB_SILENT="true", HYDRA_FULL_ERROR="0")
    for name in ("ROBUSTLAB_CHECKPOINTS", "ROBUSTLAB_DATA"):
        env.pop(name, None)
    done = subprocess.run(
        tiny_run_command(), cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / TINY_RUN / "results.json").is_file()
    return root


@pytest.fixture()
def block_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with the environment every block runs under."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTLAB_PROGRESS", "0")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ROBUSTLAB_DATA", raising=False)
    monkeypatch.delenv("ROBUSTLAB_CHECKPOINTS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small snippets: threads only add overhead on a shared machine
    torch.manual_seed(0)
    yield tmp_path
    torch.set_num_threads(threads)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, block_dir: Path, request: pytest.FixtureRequest):
    if block.skip:
        pytest.skip(block.skip)
    if TINY_RUN in block.code:
        run = request.getfixturevalue("tiny_run")
        for name in ("runs", "checkpoints"):
            (block_dir / name).symlink_to(run / name, target_is_directory=True)
    code = compile(block.code, block.id, "exec")
    exec(code, {"__name__": "__main__"})  # noqa: S102  (the docs' own code, by design)


def test_docs_have_python_blocks_that_run():
    """The parser finds the blocks (a broken fence would hide them) and most of them run."""
    assert len(PYTHON_BLOCKS) >= 10
    assert sum(block.skip is None for block in PYTHON_BLOCKS) > len(PYTHON_BLOCKS) / 2
    assert any(block.path.name == "README.md" for block in PYTHON_BLOCKS)


@pytest.mark.parametrize(
    "block",
    [block for block in PYTHON_BLOCKS if block.skip],
    ids=[block.id for block in PYTHON_BLOCKS if block.skip],
)
def test_skipped_block_says_why_in_the_page(block: Block):
    """The reason a block is not run is in the page's text, not only in the HTML comment."""
    reason = " ".join(block.skip.replace("`", "").lower().split())
    assert reason in visible_text(block.path), f"{block.id}: the page does not say {reason!r}"


def test_parser_reads_fences_markers_and_indented_blocks(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- not run: needs a GPU -->\n```python\nx = 1\n```\n"
        "- item\n\n  ```python\n  y = 2\n  ```\n```bash\nls\n```\n"
    )
    blocks = code_blocks(page)
    assert [(b.line, b.language, b.code, b.skip) for b in blocks] == [
        (4, "python", "x = 1\n", "needs a GPU"),
        (9, "python", "y = 2\n", None),
        (12, "bash", "ls\n", None),
    ]


def test_readme_is_under_250_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"
