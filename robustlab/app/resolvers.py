"""The config's own OmegaConf resolvers: ``${frac:8,255}`` writes an eps as the fraction it is.

Published Linf budgets are fractions of the 8-bit pixel range (8/255). Written as a decimal
they drift: 0.031 is 7.9/255, and a TRADES model evaluated at 0.031 instead of 8/255 reads
0.7 points more robust (fra31/auto-attack#54). ``frac`` divides in Python, so the value is
exactly ``8 / 255`` and its results.json key is ``repr(8 / 255)``.

``${run_name:${paths.checkpoint},${model.name},${defense.name}}`` names a run directory after
the model it runs on: for ``robustlab-eval``/``-detect`` that is the checkpoint's model and
defense (and seed, as a fourth argument), whatever the config's defaults say.
"""

from __future__ import annotations

from numbers import Real

from omegaconf import OmegaConf

from robustlab.errors import ConfigError, RobustlabError
from robustlab.loading import checkpoint_config

FRACTION = "frac"
RUN_NAME = "run_name"


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


def run_name(checkpoint: str | None, model: str, defense: str, seed: int | None = None) -> str:
    """``<model>_<defense>`` (``_s<seed>`` when ``seed`` is given) of a run directory: the
    checkpoint's own when one is given and readable, else the config's."""
    if checkpoint is not None:
        try:
            saved = checkpoint_config(checkpoint)
        except RobustlabError:  # the job itself reports the bad checkpoint, in one line
            saved = {}
        model = saved.get("model", {}).get("name", model)
        defense = saved.get("defense", {}).get("name", defense)
        seed = saved.get("seed", seed) if seed is not None else None
    return f"{model}_{defense}" if seed is None else f"{model}_{defense}_s{seed}"


def register_resolvers() -> None:
    """Make ``${frac:a,b}`` and ``${run_name:...}`` available to every config this process
    composes or resolves."""
    OmegaConf.register_new_resolver(FRACTION, frac, replace=True)
    OmegaConf.register_new_resolver(RUN_NAME, run_name, replace=True)


# Registered on import as well: a launcher's worker process (joblib, submitit) resolves the
# config it was sent after importing the app, without running the command line's start-up.
register_resolvers()
