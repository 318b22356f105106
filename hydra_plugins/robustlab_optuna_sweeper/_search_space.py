"""Hydra sweep overrides as Optuna distributions, suggested define-by-run (so a branch, e.g.
one defense's own knobs, is searched only when its key takes that value)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override: ``interval`` -> float (``tag(log, ...)``
    log-uniform, ``tag(int, ...)`` integer), an integer ``range`` -> int, any other list ->
    categorical over its values as override strings."""
    value = override.value()
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if "int" in value.tags:
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    choices = list(override.sweep_string_iterator())
    if isinstance(value, RangeSweep) and all(_is_int(c) for c in choices) and len(choices) > 1:
        numbers = [int(c) for c in choices]
        return IntDistribution(numbers[0], numbers[-1], step=numbers[1] - numbers[0])
    return CategoricalDistribution(choices)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _parse(overrides: Sequence[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(list(overrides))


@dataclass
class SearchSpace:
    """Fixed overrides, searched keys, and per-value branches of further searched keys."""

    fixed: dict[str, str] = field(default_factory=dict)
    searched: dict[str, BaseDistribution] = field(default_factory=dict)
    branches: dict[str, dict[str, SearchSpace]] = field(default_factory=dict)

    def add(self, overrides: Sequence[str]) -> None:
        """Add ``key=value`` overrides; a later one replaces an earlier one of the same key,
        so the command line wins over the configured search space."""
        for override in _parse(overrides):
            key = override.get_key_element()
            self.fixed.pop(key, None)
            self.searched.pop(key, None)
            if override.is_sweep_override():
                self.searched[key] = distribution(override)
            else:
                self.fixed[key] = override.get_value_element_as_str()

    def suggest(self, trial: optuna.Trial, pinned: Mapping[str, str] = ()) -> list[str]:
        """The overrides of one trial: fixed values, then suggested ones, then the branches
        their values choose; ``pinned`` keys (fixed by the caller) are not searched here."""
        pinned = dict(pinned)
        chosen = {k: v for k, v in self.fixed.items() if k not in pinned}
        for key, dist in self.searched.items():
            if key not in pinned:
                chosen[key] = _format(suggest(trial, key, dist))
        overrides = [f"{k}={v}" for k, v in chosen.items()]
        values = {**chosen, **pinned}
        for key, by_value in self.branches.items():
            branch = by_value.get(str(values.get(key, "")))
            if branch is not None:
                overrides += branch.suggest(trial, {**pinned, **chosen})
        return overrides


def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """Suggest ``name`` from ``dist`` through the trial's public API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def build_space(
    params: Mapping[str, str], conditional: Mapping[str, Any], arguments: Sequence[str]
) -> SearchSpace:
    """The configured ``params`` and ``conditional`` branches, then the command line."""
    space = SearchSpace()
    space.add([f"{key}={value}" for key, value in params.items()])
    for key, by_value in conditional.items():
        for value, branch_params in by_value.items():
            branch = SearchSpace()
            branch.add([f"{k}={v}" for k, v in branch_params.items()])
            space.branches.setdefault(key, {})[str(value)] = branch
    space.add(arguments)
    return space
