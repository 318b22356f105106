"""The shell commands of README.md and docs/**/*.md, read as the tests run them.

A shell block is a fenced ```bash, ```sh or ```shell block (its lines are commands, ``\\``
continues a line, ``#`` starts a comment) or a ```console block (``$ command`` lines, each
followed by the output it prints). The HTML comments on the lines just above a block say how
it runs; without one, every command runs verbatim:

- ``<!-- not run: REASON -->``: the block is not run (as for the Python blocks);
- ``<!-- not run `PREFIX`: REASON -->``: the commands that start with PREFIX are not run;
- ``<!-- run `PREFIX` with `ARGS`: REASON -->``: the commands that start with PREFIX run with
  ARGS appended (Hydra overrides that make a long run small; the last value of a key wins);
- ``<!-- run with NAME=GLOB -->``: the placeholder NAME stands for the one directory that GLOB
  matches in the working directory when the command runs;
- ``<!-- run first: `COMMAND` -->`` or ``<!-- run first: FIXTURE -->``: a command (a training
  that makes the checkpoint the block evaluates) or one of `FIXTURES` (files a user would have)
  runs in the working directory before the block.

Every REASON is also in the page's text. The blocks of one ``##`` section run in order in one
fresh working directory, as a user who follows the page runs them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
COMMENT = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$")
NOT_RUN = re.compile(r"^not run:\s*(?P<reason>.+)$")
NOT_RUN_COMMAND = re.compile(r"^not run `(?P<prefix>[^`]+)`:\s*(?P<reason>.+)$")
APPEND = re.compile(r"^run `(?P<prefix>[^`]+)` with `(?P<args>[^`]+)`:\s*(?P<reason>.+)$")
SUBSTITUTE = re.compile(r"^run with (?P<name>\S+?)=(?P<glob>\S+)$")
FIRST = re.compile(r"^run first:\s*(?:`(?P<command>[^`]+)`|(?P<fixture>.+))$")
# commands that name a path in the checkout run from the repository root, where the page tells
# a user to be; their outputs are redirected into the working directory
IN_CHECKOUT = re.compile(r"^(scripts/|bash scripts/|python scripts/|source \.venv/)")
# scripts/study.sh writes its sweep into the checkout (it cds there): this sends it to the
# working directory, which is the only change made to a command besides the markers' own
OUTPUT_REDIRECTS = {"scripts/study.sh": "hydra.sweep.dir={work}/multirun/tradeoff"}


@dataclass(frozen=True)
class Command:
    """One command of a block: its text as the page writes it, and how the tests run it."""

    text: str
    expected_output: tuple[str, ...] = ()
    skip: str | None = None
    appended: str = ""
    append_reason: str | None = None

    @property
    def in_checkout(self) -> bool:
        return IN_CHECKOUT.match(self.text) is not None


@dataclass(frozen=True)
class ShellBlock:
    """A shell block of a page: where it is, its section, commands and markers."""

    path: Path
    line: int
    language: str
    section: str
    commands: tuple[Command, ...]
    markers: tuple[str, ...]
    skip: str | None
    substitutions: dict[str, str] = field(default_factory=dict)
    first: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{page_name(self.path)}:{self.line}"

    @property
    def reasons(self) -> list[str]:
        """Every reason its markers give (each must be in the page's text too)."""
        found = [self.skip] if self.skip else []
        for command in self.commands:
            found += [r for r in (command.skip, command.append_reason) if r]
        return list(dict.fromkeys(found))


def page_name(path: Path) -> str:
    """The page's path from the repository root (a page elsewhere: its whole path)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def logical_lines(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comment-only lines dropped."""
    commands, pending = [], ""
    for line in code.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append(pending + line.strip() if pending else line.strip())
        pending = ""
    assert not pending, f"a continuation line ends the block: {pending!r}"
    return commands


def console_commands(code: str) -> list[tuple[str, tuple[str, ...]]]:
    """The ``$ command`` lines of a console block, each with the output lines after it."""
    found: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            found.append((line[2:].strip(), []))
        elif line.strip():
            assert found, f"console output before any command: {line!r}"
            found[-1][1].append(line)
    return [(command, tuple(output)) for command, output in found]


def comment_start(command: str) -> int:
    """Where the command's trailing ``#`` comment starts (its length when it has none)."""
    quote = None
    for index, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or command[index - 1].isspace()):
            return index
    return len(command)


def without_comment(command: str) -> str:
    return command[: comment_start(command)].rstrip()


def _markers_above(lines: list[str], fence: int) -> list[str]:
    """The HTML comments directly above line ``fence`` (0-based), blank lines between allowed."""
    markers = []
    for line in reversed(lines[:fence]):
        if not line.strip():
            continue
        match = COMMENT.match(line)
        if match is None:
            break
        markers.insert(0, match.group(1))
    return markers


def _apply_markers(block_id: str, raw: list, markers: list[str]) -> dict:
    """The block's skip reason, per-command settings, substitutions and first steps."""
    skip, substitutions, first = None, {}, []
    commands = [Command(text, output) for text, output in raw]
    for marker in markers:
        if match := NOT_RUN.match(marker):
            skip = match.group("reason")
        elif match := NOT_RUN_COMMAND.match(marker):
            commands = _update(block_id, commands, match["prefix"], skip=match["reason"])
        elif match := APPEND.match(marker):
            commands = _update(
                block_id,
                commands,
                match["prefix"],
                appended=match["args"],
                append_reason=match["reason"],
            )
        elif match := SUBSTITUTE.match(marker):
            substitutions[match["name"]] = match["glob"]
        elif match := FIRST.match(marker):
            first.append(match["command"] or match["fixture"])
        else:
            raise AssertionError(f"{block_id}: unknown marker <!-- {marker} -->")
    for name in substitutions:
        assert any(name in c.text for c in commands), f"{block_id}: no command uses {name}"
    return dict(commands=tuple(commands), skip=skip, substitutions=substitutions, first=first)


def _update(block_id: str, commands: list[Command], prefix: str, **changes) -> list[Command]:
    """``commands`` with ``changes`` made to those the marker names: the one that is exactly
    ``prefix`` (its comment aside), else every one that starts with it."""
    hits = [without_comment(c.text) == prefix for c in commands]
    if not any(hits):
        hits = [c.text.startswith(prefix) for c in commands]
    assert any(hits), f"{block_id}: no command starts with {prefix!r}"
    return [
        Command(**{**c.__dict__, **changes}) if hit else c
        for c, hit in zip(commands, hits, strict=True)
    ]


def shell_blocks(path: Path) -> list[ShellBlock]:
    """The shell blocks of a page with their sections and markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, section, start = [], "", None
    for number, line in enumerate(lines):
        if start is None and line.startswith("## "):
            section = line[3:].strip()
        match = FENCE.match(line)
        if match is None:
            continue
        if start is None:
            indent, language, start = match.group(1), match.group(2), number
        elif match.group(1) == indent and not match.group(2):
            if language in SHELL_LANGUAGES:
                code = "\n".join(text[len(indent) :] for text in lines[start + 1 : number])
                block_id = f"{page_name(path)}:{start + 1}"
                if language == "console":
                    raw = console_commands(code)
                else:
                    raw = [(text, ()) for text in logical_lines(code)]
                markers = _markers_above(lines, start)
                settings = _apply_markers(block_id, raw, markers)
                settings["first"] = tuple(settings["first"])
                blocks.append(
                    ShellBlock(
                        path, start + 1, language, section, markers=tuple(markers), **settings
                    )
                )
            start = None
    return blocks


ALL_SHELL_BLOCKS = [block for path in DOC_FILES for block in shell_blocks(path)]


def sections() -> dict[str, list[ShellBlock]]:
    """Page sections (``page#section``) with the shell blocks they run, in page order."""
    found: dict[str, list[ShellBlock]] = {}
    for block in ALL_SHELL_BLOCKS:
        key = f"{page_name(block.path)}#{block.section or 'top'}"
        found.setdefault(key, []).append(block)
    return found


def visible_text(path: Path) -> str:
    """The page without HTML comments and backticks, lower-cased, whitespace collapsed."""
    text = re.sub(r"<!--.*?-->", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(text.replace("`", "").lower().split())


# ---------------------------------------------------------------------------------------------
# running


PRELUDE = r"""
set -e
# the one directory a placeholder stands for: a finished checkpoint, a data folder
one_match() {
  local found=() path
  for path in $1; do
    case "$path" in *.lock|*.partial|*.replaced) continue ;; esac
    [ -e "$path" ] && found+=("$path")
  done
  if [ "${#found[@]}" -ne 1 ]; then
    echo "docs command: $1 matches ${#found[@]} paths in $PWD: ${found[*]}" >&2
    return 1
  fi
  printf '%s' "${found[0]}"
}
"""


def runnable_text(command: Command, block: ShellBlock, work: Path) -> str:
    """The command line the tests run: the page's, with the markers' changes and redirects."""
    text = command.text
    for name, pattern in block.substitutions.items():
        text = text.replace(name, f'"$(one_match {shlex.quote(pattern)})"')
    extra = [command.appended] if command.appended else []
    for prefix, redirect in OUTPUT_REDIRECTS.items():
        if text.startswith(prefix):
            extra.append(redirect.format(work=shlex.quote(str(work))))
    if extra:
        cut = comment_start(text)
        text = f"{text[:cut].rstrip()} {' '.join(extra)}" + (
            f"  {text[cut:]}" if cut < len(text) else ""
        )
    return text


def block_script(block: ShellBlock, work: Path) -> str:
    """One bash script for a bash block: its commands in order in one shell, as a user types
    them, each announced on stderr with the seconds since the start."""
    lines = [PRELUDE, f"cd {shlex.quote(str(work))}"]
    for number, command in enumerate(block.commands, 1):
        if command.skip:
            continue
        text = runnable_text(command, block, work)
        lines.append(
            f'echo {shlex.quote(f">>> [{number}] ")}"[$SECONDS s] "{shlex.quote(text)} >&2'
        )
        if command.in_checkout:
            lines.append(f"(cd {shlex.quote(str(ROOT))} && {text}\n)")
        else:
            lines.append(text)
    lines.append('echo ">>> [end] [$SECONDS s]" >&2')
    return "\n".join(lines) + "\n"


def write_user_package(work: Path) -> None:
    """``mypkg`` as a user's own code: ``mypkg.nets:build`` and ``mypkg.models:mlp`` (small MLPs
    for 8x8 digits) with their weights ``net.safetensors`` and ``mlp.safetensors``."""
    import torch
    from safetensors.torch import save_file

    package = work / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = (
        "from torch import nn\n\n\n"
        "def {name}(width: int = 16) -> nn.Module:\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), "
        "nn.Linear(width, 10))\n"
    )
    (package / "nets.py").write_text(source.format(name="build"))
    (package / "models.py").write_text(source.format(name="mlp"))
    torch.manual_seed(0)
    for weights, width in (("net.safetensors", 16), ("mlp.safetensors", 8)):
        layers = [torch.nn.Flatten(), torch.nn.Linear(64, width), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, work / weights)


def write_cifar10(work: Path) -> None:
    """A tiny CIFAR-10 in the official python-batch format in ``cifar10/`` (no download)."""
    from tests.cifar10_files import write_tiny_cifar10

    write_tiny_cifar10(work / "cifar10")


FIXTURES: dict[str, Callable[[Path], None]] = {
    "the user package mypkg and its weights": write_user_package,
    "a tiny CIFAR-10 in cifar10/": write_cifar10,
}
