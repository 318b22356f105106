"""Finished eps curves in an evaluation's resumable state: a resumed evaluation takes each
finished curve back (points, per-example broken eps, kept images) instead of attacking again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from functools import partial
from typing import Any

from robustlab.evaluation.grid import EpsCurve, EpsPoint
from robustlab.evaluation.resume_state import EvaluationState

PREFIX = "curve:"


def _point_meta(point: EpsPoint) -> dict:
    meta = asdict(point)
    meta["eps"] = repr(point.eps)  # inf survives JSON
    return meta


def _point(meta: dict) -> EpsPoint:
    known = {f.name for f in fields(EpsPoint)}
    values = {k: v for k, v in meta.items() if k in known}
    values["eps"], values["ci"] = float(values["eps"]), tuple(values["ci"])
    return EpsPoint(**values)


def store_curve(state: EvaluationState, key: str, curve: EpsCurve) -> None:
    """Put ``curve`` into ``state`` under ``key`` and write the state (an attack finished)."""
    meta = {
        "attack": curve.attack,
        "clean_accuracy": curve.clean_accuracy,
        "n": curve.n,
        "points": [_point_meta(p) for p in curve.points],
        "norm": curve.norm,
        "params": curve.params,
        "schedule": curve.schedule,
        "summary": f"curve {key}",
    }
    tensors = {f"kept_{t!r}": images for t, images in curve.adversarial.items()}
    if curve.broken_eps is not None:
        tensors["broken_eps"] = curve.broken_eps
    state.put(PREFIX + key, meta, tensors)
    state.save(force=True)


def load_curve(state: EvaluationState, key: str) -> EpsCurve | None:
    """The finished curve ``key`` of ``state``, or None."""
    saved = state.get(PREFIX + key)
    if saved is None:
        return None
    meta, tensors = saved
    curve = EpsCurve(
        attack=meta["attack"],
        clean_accuracy=meta["clean_accuracy"],
        n=meta["n"],
        points=[_point(p) for p in meta["points"]],
        norm=meta["norm"],
        params=dict(meta["params"]),
        schedule=meta["schedule"],
        broken_eps=tensors["broken_eps"].double() if "broken_eps" in tensors else None,
    )
    curve.adversarial = {
        float(name.removeprefix("kept_")): images
        for name, images in tensors.items()
        if name.startswith("kept_")
    }
    return curve


def resumable_curve(state: EvaluationState, key: str, run: Callable[[], EpsCurve]) -> EpsCurve:
    """The curve ``key`` from ``state`` when it finished before, else ``run()`` stored there."""
    curve = load_curve(state, key)
    if curve is None:
        curve = run()
        store_curve(state, key, curve)
    return curve


def resumable_curves(
    state: EvaluationState, attacks: Mapping[str, Any], run: Callable[[str, Any], EpsCurve]
) -> dict[str, EpsCurve]:
    """``{key: run(key, spec)}`` over ``attacks``, taking the finished ones from ``state``."""
    return {
        key: resumable_curve(state, key, partial(run, key, spec)) for key, spec in attacks.items()
    }


def finished_curves(state: EvaluationState) -> list[str]:
    """The keys of the curves ``state`` holds as finished."""
    return [name.removeprefix(PREFIX) for name in state.sections if name.startswith(PREFIX)]


__all__ = ["finished_curves", "load_curve", "resumable_curve", "resumable_curves", "store_curve"]
