"""Progress bars: on a terminal by default, silent in logs and pipes, ROBUSTLAB_PROGRESS wins."""

from __future__ import annotations

import io
import sys

import pytest

from robustlab.progress import progress_bar, progress_enabled


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("forced", "terminal", "shown"),
    [
        (None, True, True),
        (None, False, False),
        ("1", False, True),
        ("0", True, False),
    ],
    ids=["terminal", "pipe", "forced-on", "forced-off"],
)
def test_progress_follows_the_terminal_unless_forced(monkeypatch, forced, terminal, shown):
    if forced is None:
        monkeypatch.delenv("ROBUSTLAB_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("ROBUSTLAB_PROGRESS", forced)
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert progress_enabled() is shown
    with progress_bar("attack", total=3) as bar:
        bar.update(3)
    assert ("attack" in stream.getvalue()) is shown
