"""The config's own OmegaConf resolvers: ``${frac:8,255}`` writes an eps as the fraction it is.

Published Linf budgets are fractions of the 8-bit pixel range (8/255). Written as a decimal
they drift: 0.031 is 7.9/255, and a TRADES model evaluated at 0.031 instead of 8/255 reads
0.7 points more robust (fra31/auto-attack#54). ``frac`` divides in Python, so the value is
exactly ``8 / 255`` and its results.json key is ``repr(8 / 255)``.
"""

from __future__ import annotations

from numbers import Real

from omegaconf import OmegaConf

from robustlab.errors import ConfigError

FRACTION = "frac"


def frac(numerator: Real, denominator: Real) -> float:
    """``numerator / denominator`` as a float, exactly as Python's ``/`` rounds it."""
    for value in (numerator, denominator):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ConfigError(
                f"${{{FRACTION}:{numerator},{denominator}}}: both parts must be numbers, "
                f"e.g. ${{{FRACTION}:8,255}}"
            )
    if denominator == 0:
        raise ConfigError(f"${{{FRACTION}:{numerator},{denominator}}}: the denominator is 0")
    return numerator / denominator


def register_resolvers() -> None:
    """Make ``${frac:a,b}`` available to every config this process composes or resolves."""
    OmegaConf.register_new_resolver(FRACTION, frac, replace=True)


# Registered on import as well: a launcher's worker process (joblib, submitit) resolves the
# config it was sent after importing the app, without running the command line's start-up.
register_resolvers()
