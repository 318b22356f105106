"""One call for the pipeline: smoothing, Lipschitz margin and minimum-norm figures of a model,
as a typed report that turns into a results.json fragment."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from robustlab.certify.lipschitz import lipschitz_bound, margin_certificate
from robustlab.certify.min_norm import (
    combine_min_norms,
    median_norm,
    min_norm_perturbations,
    robust_accuracy_curve,
)
from robustlab.certify.smoothing import ABSTAIN, Smooth

log = logging.getLogger(__name__)

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
            out["certified_accuracy"] = {
                "smoothing": {
                    "sigma": s.sigma, "n0": s.n0, "n": s.n, "alpha": s.alpha,
                    "radii": _keyed(at), "abstain_rate": s.abstain_rate,
                    "curve": _keyed(self.smoothing_curve()),
                }
            }  # fmt: skip
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


def _timed(report: CertificationReport, name: str, began: float) -> None:
    report.timing_s[name] = round(time.perf_counter() - began, 3)
    log.info("certify %s: %.1f s", name, report.timing_s[name])


def certify_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    sigma: float | None = None,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    radii: Sequence[float] = DEFAULT_RADII,
    batch_size: int = 1000,
    lipschitz: bool = True,
    min_norm: Sequence[str] = ("L2", "Linf"),
    min_norm_steps: int = 100,
    suite_min_eps: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> CertificationReport:
    """Smoothing certificate (when ``sigma`` is given), Lipschitz margin certificate and
    minimum-norm perturbations (per norm in ``min_norm``, combined with the fixed-eps suite's
    per-example smallest breaking eps in ``suite_min_eps[norm]`` when given) of ``model``."""
    report = CertificationReport(radii=tuple(float(r) for r in radii))
    num_classes = num_classes or int(getattr(model, "num_classes", 0)) or int(labels.max()) + 1
    if sigma is not None:
        began = time.perf_counter()
        classes, cert = Smooth(model, num_classes, sigma, seed).certify(
            images, n0, n, alpha, batch_size
        )
        report.smoothing = SmoothingResult(sigma, n0, n, alpha, classes, cert, labels.cpu())
        _timed(report, "smoothing", began)
    if lipschitz:
        began = time.perf_counter()
        report.lipschitz = lipschitz_bound(model, images.shape[1:]).bound
        report.margin_radii = margin_certificate(model, images, report.lipschitz, labels)
        _timed(report, "lipschitz", began)
    for norm in min_norm:
        began = time.perf_counter()
        found = min_norm_perturbations(model, images, labels, norm, min_norm_steps)
        suite = (suite_min_eps or {}).get(norm)
        report.min_norms[norm] = combine_min_norms(found, suite)
        _timed(report, f"min_norm_{norm}", began)
    report.warnings.extend(consistency_warnings(report))
    return report


def consistency_warnings(report: CertificationReport) -> list[str]:
    """Plain-language flags: a certificate contradicted by an attack, vacuous bounds, abstention."""
    notes = []
    s = report.smoothing
    if s is not None and s.abstain_rate > 0.5:
        notes.append(
            f"smoothing abstained on {s.abstain_rate:.0%} of examples at sigma={s.sigma}: "
            "the base model is not accurate under that noise (train it with gaussian_noise)"
        )
    if report.lipschitz is not None and not math.isfinite(report.lipschitz):
        notes.append("the Lipschitz product bound is infinite: the margin certificate is vacuous")
    l2 = report.min_norms.get("L2")
    if report.margin_radii is not None and l2 is not None:
        broken = int((report.margin_radii > l2 + 1e-6).sum())
        if broken:
            notes.append(
                f"{broken} examples have an adversarial example inside their Lipschitz margin "
                "certificate: the bound is wrong for this model (unsupported layer?)"
            )
    return notes
