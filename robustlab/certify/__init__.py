"""Certified robustness: lower bounds on the distance to the decision boundary, beside the
upper bounds that attacks give.

- [`Smooth`][robustlab.certify.Smooth]: randomized smoothing (Cohen et al. 2019), certified L2
  radii.
- ``operator_norm``, [`lipschitz_bound`][robustlab.certify.lipschitz_bound],
  [`margin_certificate`][robustlab.certify.margin_certificate]: spectral norms of convolutions by
  power iteration (the im2col matrix never built), the product bound of a network and the margin
  certificate (Tsuzuku et al. 2018).
- [`min_norm_perturbations`][robustlab.certify.min_norm_perturbations]: the smallest L2 / Linf
  adversarial perturbation an attack (FMN, Pintor et al. 2021) finds per example, and the
  robust-accuracy-vs-eps curve it implies.

No Hydra, OmegaConf or W&B here.
"""

from robustlab.certify.lipschitz import LipschitzBound, lipschitz_bound, margin_certificate
from robustlab.certify.min_norm import (
    combine_min_norms,
    median_norm,
    min_norm_perturbations,
    robust_accuracy_curve,
)
from robustlab.certify.model_bounds import certify_model
from robustlab.certify.operator_norm import batchnorm_scale, operator_norm, spectral_norm
from robustlab.certify.plots import plot_certified_vs_empirical
from robustlab.certify.smoothing import ABSTAIN, Smooth, clopper_pearson_lower
from robustlab.certify.summary import CertificationReport, SmoothingResult

__all__ = [
    "ABSTAIN",
    "CertificationReport",
    "LipschitzBound",
    "Smooth",
    "SmoothingResult",
    "batchnorm_scale",
    "certify_model",
    "clopper_pearson_lower",
    "combine_min_norms",
    "lipschitz_bound",
    "margin_certificate",
    "median_norm",
    "min_norm_perturbations",
    "operator_norm",
    "plot_certified_vs_empirical",
    "robust_accuracy_curve",
    "spectral_norm",
]
