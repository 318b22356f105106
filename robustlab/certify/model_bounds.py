"""One call for the pipeline: a model's smoothing certificate, Lipschitz margin certificate and
minimum-norm perturbations, gathered into a ``CertificationReport``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from robustlab.certify.lipschitz import lipschitz_bound, margin_certificate
from robustlab.certify.min_norm import combine_min_norms, min_norm_perturbations
from robustlab.certify.smoothing import Smooth
from robustlab.certify.summary import DEFAULT_RADII, CertificationReport, SmoothingResult

log = logging.getLogger(__name__)


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
            images, n0, n, alpha, batch_size=batch_size
        )
        report.smoothing = SmoothingResult(
            sigma=sigma, n0=n0, n=n, alpha=alpha, classes=classes, radii=cert, labels=labels.cpu()
        )
        _timed(report, "smoothing", began)
    if lipschitz:
        began = time.perf_counter()
        report.lipschitz = lipschitz_bound(model, images.shape[1:]).bound
        report.margin_radii = margin_certificate(model, images, report.lipschitz, labels)
        _timed(report, "lipschitz", began)
    for norm in min_norm:
        began = time.perf_counter()
        found = min_norm_perturbations(model, images, labels, norm, steps=min_norm_steps)
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
