"""The typed results of certification: smoothing's per-example output and the report of a
model's certified and attacked bounds, which turns into a results.json fragment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from robustlab.certify.min_norm import median_norm, robust_accuracy_curve
from robustlab.certify.smoothing import ABSTAIN

DEFAULT_RADII = (0.25, 0.5, 1.0)
CURVE_GRIDS = {
    "L2": tuple(round(0.05 * i, 4) for i in range(41)),  # 0 .. 2
    "Linf": tuple(round(0.025 * i, 4) for i in range(13)),  # 0 .. 0.3
}

Curve = dict[float, float]


def certified_curve(correct: torch.Tensor, radii: torch.Tensor, grid: Sequence[float]) -> Curve:
    """Certified accuracy at every radius: correct and certified at a radius >= r."""
    ok = correct.cpu().bool()
    return {float(r): float((ok & (radii.cpu() >= r)).double().mean()) for r in grid}


def _keyed(curve: Mapping[float, float]) -> dict[str, float]:
    return {repr(float(k)): v for k, v in curve.items()}


@dataclass
class SmoothingResult:
    """Per-example output of [`Smooth.certify`][robustlab.certify.Smooth.certify] with its
    settings."""

    sigma: float
    n0: int
    n: int
    alpha: float
    classes: torch.Tensor
    radii: torch.Tensor
    labels: torch.Tensor

    @property
    def correct(self) -> torch.Tensor:
        return self.classes == self.labels.cpu()

    @property
    def abstain_rate(self) -> float:
        return float((self.classes == ABSTAIN).double().mean())


@dataclass
class CertificationReport:
    """Certified (lower) and attacked (upper) bounds of a model's robustness on a test set."""

    radii: tuple[float, ...] = DEFAULT_RADII
    smoothing: SmoothingResult | None = None
    lipschitz: float | None = None
    margin_radii: torch.Tensor | None = None
    min_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    timing_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def smoothing_curve(self, grid: Sequence[float] = CURVE_GRIDS["L2"]) -> Curve:
        """Certified accuracy of the smoothed classifier vs L2 radius."""
        s = self.smoothing
        return {} if s is None else certified_curve(s.correct, s.radii, grid)

    def lipschitz_curve(self, grid: Sequence[float] = CURVE_GRIDS["L2"]) -> Curve:
        """Certified accuracy of the margin certificate vs L2 radius (radius 0 where wrong)."""
        r = self.margin_radii
        return {} if r is None else certified_curve(r > 0, r, grid)

    def min_norm_curve(self, norm: str, grid: Sequence[float] | None = None) -> Curve:
        """Empirical robust accuracy vs eps from the per-example smallest perturbations."""
        grid = CURVE_GRIDS.get(norm, CURVE_GRIDS["L2"]) if grid is None else grid
        return robust_accuracy_curve(self.min_norms[norm], grid)

    def to_results(self) -> dict:
        """The results.json fragment (eps and radius keys are ``repr(float(r))``)."""
        out: dict = {"timing_s": {f"certify_{k}": v for k, v in self.timing_s.items()}}
        if (s := self.smoothing) is not None:
            at = certified_curve(s.correct, s.radii, self.radii)
            smoothing = {"sigma": s.sigma, "n0": s.n0, "n": s.n, "alpha": s.alpha}
            smoothing["radii"] = _keyed(at)
            smoothing["abstain_rate"] = s.abstain_rate
            smoothing["curve"] = _keyed(self.smoothing_curve())
            out["certified_accuracy"] = {"smoothing": smoothing}
        if self.lipschitz is not None and (margin := self.margin_radii) is not None:
            out["lipschitz"] = {
                "bound": self.lipschitz,
                "median_margin_radius": float(margin.median()),
                "radii": _keyed(certified_curve(margin > 0, margin, self.radii)),
                "curve": _keyed(self.lipschitz_curve()),
            }
        if self.min_norms:
            out["min_norm"] = {k: median_norm(v) for k, v in self.min_norms.items()}
            out["min_norm_curve"] = {k: _keyed(self.min_norm_curve(k)) for k in self.min_norms}
        out["warnings"] = list(self.warnings)
        return out
