"""One registry shape for every room, in the style of timm: register, list, create.

Models, attacks, detectors, attribution methods and defenses each keep one
[`Registry`][robustlab.registry.Registry] and expose it as three plain functions
(``register_model``/``list_models``/``create_model`` and likewise), so a user who knows one room
knows them all. An unknown name is one [`ConfigError`][robustlab.errors.ConfigError] line that names
the nearest valid names.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from robustlab.errors import ConfigError

Entry = TypeVar("Entry", bound=Callable[..., object])


def nearest_names(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """The valid names closest to ``name`` (difflib ratio >= 0.5), best first; equal ratios
    go to the longer common prefix, so ``resnet21`` suggests ``resnet20`` before ``resnet32``."""
    name = str(name)
    scores = {
        candidate: (
            difflib.SequenceMatcher(None, name, candidate).ratio(),
            len(os.path.commonprefix([name.lower(), candidate.lower()])),
        )
        for candidate in valid
    }
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    return [c for c in ranked if scores[c][0] >= 0.5][:n]


def did_you_mean(name: str, valid: Iterable[str], show: Callable[[str], str] = str) -> str:
    """``"did you mean a or b? "`` for the valid names nearest ``name`` (each written by
    ``show``), or ``""`` when none is near: the hint of every unknown-name message."""
    near = nearest_names(name, valid)
    return f"did you mean {' or '.join(show(n) for n in near)}? " if near else ""


def unknown_name_message(kind: str, name: str, valid: Iterable[str]) -> str:
    """``unknown model 'resnet21': did you mean resnet20? (valid: ...)`` as one line."""
    valid = list(valid)
    hint = did_you_mean(name, valid)
    return f"unknown {kind} {name!r}: {hint}(valid: {', '.join(valid) or 'none'})"


class Registry(Generic[Entry]):
    """Named factories of one kind; names are case-insensitive and unique.

    ``kind`` names the kind in errors ("model", "attack"). Entries are callables (a class or a
    factory function); ``options`` reads their keyword options from the signature. Lookups
    ignore case; ``names`` keeps each name as it was registered (``DeepFool``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._spelling: dict[str, str] = {}

    def register(self, name: str) -> Callable[[Entry], Entry]:
        """Decorator that files ``entry`` under ``name``; re-registering the same object (a
        module imported twice) is allowed, a different one under a taken name is an error."""
        key = name.lower()

        def decorator(entry: Entry) -> Entry:
            previous = self._entries.get(key)
            if previous is not None and _qualname(previous) != _qualname(entry):
                raise ConfigError(f"{self.kind} name {key!r} is already registered by {previous!r}")
            self._entries[key] = entry
            self._spelling[key] = name
            return entry

        return decorator

    def names(self) -> list[str]:
        """Registered names as spelled when registered, in registration order."""
        return list(self._spelling.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def get(self, name: str) -> Entry:
        """The entry filed under ``name``, or one ConfigError line with the nearest names."""
        entry = self._entries.get(str(name).lower())
        if entry is None:
            raise ConfigError(unknown_name_message(self.kind, name, self.names()))
        return entry

    def options(self, name: str, skip: Iterable[str] = ()) -> dict[str, object]:
        """Keyword options of an entry and their defaults (``skip``: fixed positional args)."""
        skipped = set(skip)
        return {
            p.name: p.default
            for p in inspect.signature(self.get(name)).parameters.values()
            if p.name not in skipped
            and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        }

    def check_options(self, name: str, given: Iterable[str], skip: Iterable[str] = ()) -> None:
        """One ConfigError line when ``given`` holds an option the entry does not take."""
        valid = self.options(name, skip)
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ConfigError(
                f"{self.kind} {name!r} has no option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(valid) or '(none)'}"
            )


def _qualname(entry: object) -> str:
    return f"{getattr(entry, '__module__', '')}.{getattr(entry, '__qualname__', repr(entry))}"
