"""The typed result of the explanation stage and its results.json fragment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from robustlab.explain.display import ExplanationDisplay
from robustlab.explain.inversion_study import InversionStudy
from robustlab.explain.se_shift import SEAttention

FAITHFULNESS_KEYS = (
    "deletion_auc_clean",
    "deletion_auc_adversarial",
    "insertion_auc_clean",
    "insertion_auc_adversarial",
)


def _mean(values: Tensor) -> float | None:
    """Mean over the finite entries; None when there are none (JSON has no NaN)."""
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


EXPLANATIONS_FIGURE = "explanations.png"
SE_FIGURE = "se_attention.png"


@dataclass
class ExplanationReport:
    """Per-method, per-example scores of clean vs adversarial explanations.

    ``scores[method]`` holds (N,) tensors: ``topk_intersection``, ``spearman`` (clean vs
    adversarial importance), the four ``FAITHFULNESS_KEYS`` and ``sanity_spearman`` (trained
    vs randomised model). ``random_baseline`` has the faithfulness AUCs of a random ranking.
    """

    methods: list[str]
    k: int
    num_pixels: int
    target: str
    indices: Tensor
    fooled: Tensor
    scores: dict[str, dict[str, Tensor]]
    random_baseline: dict[str, Tensor]
    ig_completeness_error: Tensor | None = None
    se_attention: SEAttention | None = None
    display: ExplanationDisplay | None = None
    inversion: InversionStudy | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def _fragility(self, method: str) -> dict[str, float | None]:
        out = {}
        for metric in ("topk_intersection", "spearman"):
            values = self.scores[method][metric]
            out[metric] = _mean(values)
            out[f"{metric}_fooled"] = _mean(values[self.fooled])
            out[f"{metric}_not_fooled"] = _mean(values[~self.fooled])
        return out

    def to_results(self) -> dict:
        """``{"explanations": {...}}``: fragility, faithfulness, sanity and SE-shift figures
        (means over the explained examples); warnings are in ``self.warnings``."""
        body: dict = {
            "n_examples": len(self.indices),
            "n_fooled": int(self.fooled.sum()),
            "target": self.target,
            "k": self.k,
            "topk_chance": self.k / self.num_pixels,
            "methods": list(self.methods),
            "fragility": {m: self._fragility(m) for m in self.scores},
            "faithfulness": {
                m: {key: _mean(self.scores[m][key]) for key in FAITHFULNESS_KEYS}
                for m in self.scores
            },
            "sanity": {
                m: _mean(scores["sanity_spearman"])
                for m, scores in self.scores.items()
                if "sanity_spearman" in scores
            },
            "seconds": self.seconds,
        }
        body["faithfulness"]["random"] = {
            key: _mean(self.random_baseline[key])
            for key in FAITHFULNESS_KEYS
            if key in self.random_baseline
        }
        if self.ig_completeness_error is not None:
            body["ig_completeness_error"] = _mean(self.ig_completeness_error)
        if self.se_attention is not None:
            body["se_attention"] = self.se_attention.to_results()
        if self.inversion is not None:
            body["inversion"] = self.inversion.to_results()
        return {"explanations": body}

    def save_artifacts(self, directory: str | Path) -> list[Path]:
        """The per-job figures beside results.json: ``explanations.png`` (clean | adversarial |
        perturbation | every method's maps), for SE models ``se_attention.png``, and with an
        inversion study its reconstructions (``inversions.safetensors``)."""
        from robustlab.explain.plots import plot_explanations  # matplotlib on demand
        from robustlab.explain.se_plots import plot_se_attention

        directory = Path(directory)
        written = [
            plot_explanations(self.display, directory / EXPLANATIONS_FIGURE),
            plot_se_attention(self.se_attention, directory / SE_FIGURE),
        ]
        if self.inversion is not None:
            written.append(self.inversion.save(directory))
        return [path for path in written if path is not None]
