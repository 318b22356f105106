"""The one Markdown table layout of the report: a header, a rule and escaped cells."""

from __future__ import annotations

from collections.abc import Sequence

from robustlab.report.tables import Stat

MISSING = "–"  # an absent value, in every table of the report


def table_cell(text: object) -> str:
    """Make text safe inside a Markdown table cell (no line break, no column split)."""
    return str(text).replace("\n", " ").replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table, followed by a blank line; every cell escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(table_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def format_percent(stat: Stat | None) -> str:
    """``81.2 ± 1.3`` (percent, std over seeds when there are several), ``–`` when absent."""
    if stat is None:
        return MISSING
    text = f"{100 * stat.mean:.1f}"
    return f"{text} ± {100 * stat.std:.1f}" if stat.std is not None else text
