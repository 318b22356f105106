"""docs/reference.md lists every room's public names, generated from ``__all__``.

The page cannot go stale: this test renders it again and compares. After changing an
``__all__`` (or a public docstring's first line), write the page again with
``.venv/bin/python tests/test_api_reference.py``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference.md"

# The rooms a user imports from, in the order data flows through them (DESIGN.md).
ROOMS = (
    "robustlab",
    "robustlab.errors",
    "robustlab.data",
    "robustlab.models",
    "robustlab.attacks",
    "robustlab.torchattacks",
    "robustlab.evaluation",
    "robustlab.training",
    "robustlab.detection",
    "robustlab.explain",
    "robustlab.certify",
    "robustlab.distributed",
    "robustlab.tracking",
    "robustlab.report",
)

HEADER = """# Public API by room

Every name below is importable from its room (`from robustlab.models import create_model`) and
is the room's whole public surface: its `__all__`. The command-line apps (`robustlab.app`) are
entry points, not a library API. Each entry's own page (API reference) has its signature and
docstring. This page is generated from the code; `tests/test_api_reference.py` checks that it
matches (and rewrites it when run as a script).
"""


def _summary(obj: object) -> str:
    """The first line of an object's own docstring; a constant says what kind of value it is."""
    if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
        doc = inspect.getdoc(obj) or ""
        return doc.strip().splitlines()[0].rstrip() if doc.strip() else ""
    return f"constant ({type(obj).__name__})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole page, as the code says it should be."""
    parts = [HEADER]
    for room in ROOMS:
        module = importlib.import_module(room)
        names = sorted(module.__all__, key=str.lower)
        count = f"{len(names)} name" + ("" if len(names) == 1 else "s")
        parts.append(f"## `{room}` ({count})\n")
        parts.append("| name | what it is |\n| --- | --- |")
        parts += [f"| `{name}` | {_cell(_summary(getattr(module, name)))} |" for name in names]
        parts.append("")
    return "\n".join(parts)


def test_the_reference_page_lists_every_room_s_all():
    expected = render()
    assert PAGE.read_text(encoding="utf-8") == expected, (
        "docs/reference.md is stale: run .venv/bin/python tests/test_api_reference.py"
    )


def test_every_listed_name_has_a_summary():
    # a public function or class without a docstring would be an empty row
    empty = [
        f"{room}.{name}"
        for room in ROOMS
        for name in importlib.import_module(room).__all__
        if not _summary(getattr(importlib.import_module(room), name))
    ]
    assert empty == []


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
