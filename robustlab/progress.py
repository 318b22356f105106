"""Progress bars: on a terminal by default, silent in logs and pipes, ROBUSTLAB_PROGRESS wins."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """Progress bars show on a terminal only, unless ROBUSTLAB_PROGRESS=1/0 says otherwise."""
    forced = os.environ.get("ROBUSTLAB_PROGRESS")
    if forced is not None:
        return forced not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def progress_bar(
    desc: str,
    total: int | None,
    *,
    unit: str = "it",
    leave: bool = False,
    iterable: Iterable[T] | None = None,
) -> tqdm:
    """A tqdm bar that stays quiet when stderr is not a terminal; without ``iterable`` it is
    updated by hand (``bar.update(n)``)."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        leave=leave,
        disable=not progress_enabled(),
        dynamic_ncols=True,
    )


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False
) -> Iterator[T]:
    """Wrap a long loop in a tqdm bar that stays quiet when stderr is not a terminal."""
    return iter(progress_bar(desc, total, leave=leave, iterable=iterable))
