"""Plain-language warnings about explanation figures that should not be read at face value."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from robustlab.explain.summary import ExplanationReport

FEW_EXAMPLES = 8
COMPLETENESS_TOLERANCE = 0.05  # IG's sum may miss f(x) - f(x') by this fraction
SANITY_THRESHOLD = 0.5  # trained-vs-random rank correlation above this fails Adebayo's check


def _sanity_warnings(report: ExplanationReport) -> list[str]:
    out = []
    for method, scores in report.scores.items():
        values = scores.get("sanity_spearman")
        if values is None or not torch.isfinite(values).any():
            continue
        rho = float(values[torch.isfinite(values)].mean())
        if rho > SANITY_THRESHOLD:
            out.append(
                f"sanity check: {method} maps of a randomly re-initialised model correlate with "
                f"the trained model's (Spearman {rho:.2f}); they show the input more than the model"
            )
    return out


def _map_warnings(report: ExplanationReport) -> list[str]:
    out = []
    for method, scores in report.scores.items():
        undefined = int((~torch.isfinite(scores["spearman"])).sum())
        if undefined:
            out.append(
                f"{method}: {undefined} of {len(scores['spearman'])} clean/adversarial map pairs "
                f"include a constant map (e.g. all zero after the ReLU); their rank correlation is "
                f"undefined and left out of the mean"
            )
        floor = report.random_baseline.get("deletion_auc_clean")
        deletion = scores["deletion_auc_clean"]
        if floor is not None and len(deletion) and float(deletion.mean()) >= float(floor.mean()):
            out.append(
                f"{method}: deleting its most important pixels first lowers the class probability "
                f"no faster than a random order (deletion AUC {float(deletion.mean()):.3f} >= "
                f"{float(floor.mean()):.3f}); its maps are not faithful to this model"
            )
    return out


def explanation_warnings(
    report: ExplanationReport, options: Mapping[str, Mapping[str, object]]
) -> list[str]:
    """Warnings for too few examples, an inexact IG, a failed sanity check, constant maps and
    maps no more faithful than chance."""
    n = len(report.indices)
    if n == 0:
        return ["explanations: no correctly classified clean example to explain; skipped"]
    out = []
    if n < FEW_EXAMPLES:
        out.append(f"explanations: only {n} correctly classified examples; figures are noisy")
    if report.ig_completeness_error is not None:
        error = float(report.ig_completeness_error.median())
        if error > COMPLETENESS_TOLERANCE:
            steps = options.get("ig", {}).get("steps")
            out.append(
                f"integrated gradients: median completeness error {error:.1%} with steps={steps}; "
                f"raise the steps for attributions that add up to f(x) - f(baseline)"
            )
    se_warnings = report.se_attention.warnings() if report.se_attention is not None else []
    return out + _sanity_warnings(report) + _map_warnings(report) + se_warnings
