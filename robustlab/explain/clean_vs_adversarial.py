"""``explain_robustness``: what the model looks at on clean inputs and on their adversarial
examples, in one call a pipeline stage can make.

The examples are the first ``max_examples`` that the model classifies correctly when clean (an
adversarial example of a misclassified input explains nothing new); the adversarial images come
from the caller, aligned with the clean ones. Defaults are sized for about two seconds of CPU
on 8x8 digits with a ResNet-20 (see the README's Explanations section).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustlab.errors import ConfigError
from robustlab.explain.attribute import attribute, importance
from robustlab.explain.compare import default_k, spearman, topk_intersection
from robustlab.explain.display import ExplanationDisplay
from robustlab.explain.faithfulness import deletion_insertion
from robustlab.explain.integrated_gradients import completeness_error
from robustlab.explain.registry import attribution_options
from robustlab.explain.sanity import randomization_correlation, randomized_copy
from robustlab.explain.se_shift import SEAttention, se_attention_shift
from robustlab.explain.seeding import seeded
from robustlab.explain.summary import ExplanationReport
from robustlab.explain.warnings import explanation_warnings
from robustlab.models.inference import model_device, predict

logger = logging.getLogger(__name__)

DEFAULT_METHODS = ("saliency", "smoothgrad", "ig", "cam", "gradcam", "gradcampp")
DEFAULT_OPTIONS: dict[str, dict[str, object]] = {"smoothgrad": {"samples": 16}, "ig": {"steps": 32}}
TARGETS = ("predicted", "label")


@dataclass
class _Run:
    """What every method is scored on: the selected examples, their target classes, and the
    randomised model of the sanity check."""

    model: nn.Module
    random_model: nn.Module | None
    clean: Tensor
    adversarial: Tensor
    clean_target: Tensor
    adversarial_target: Tensor
    k: int
    steps: int
    generator: torch.Generator


def _check_inputs(clean: Tensor, adversarial: Tensor, labels: Tensor, target: str) -> None:
    if clean.ndim != 4 or clean.shape != adversarial.shape:
        raise ConfigError(
            f"clean and adversarial images must both be (N, C, H, W) of one shape, got "
            f"{tuple(clean.shape)} and {tuple(adversarial.shape)}"
        )
    if labels.shape != (len(clean),):
        raise ConfigError(f"labels must have shape ({len(clean)},), got {tuple(labels.shape)}")
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")


def _faithfulness(run: _Run, name: str, images: Tensor, imp: Tensor, target: Tensor) -> dict:
    curves = deletion_insertion(
        run.model, images, imp, target, steps=run.steps, generator=run.generator
    )
    return {
        f"deletion_auc_{name}": curves.deletion_auc,
        f"insertion_auc_{name}": curves.insertion_auc,
    }


def _method_scores(
    run: _Run, method: str, options: Mapping[str, object]
) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor]]:
    """All per-example scores of one method, and its clean/adversarial maps."""
    maps_clean = attribute(run.model, run.clean, run.clean_target, method=method, **options)
    maps_adv = attribute(
        run.model, run.adversarial, run.adversarial_target, method=method, **options
    )
    imp_clean, imp_adv = importance(maps_clean, method), importance(maps_adv, method)
    scores = {
        "topk_intersection": topk_intersection(imp_clean, imp_adv, run.k),
        "spearman": spearman(imp_clean, imp_adv),
        **_faithfulness(run, "clean", run.clean, imp_clean, run.clean_target),
        **_faithfulness(run, "adversarial", run.adversarial, imp_adv, run.adversarial_target),
    }
    if run.random_model is not None:
        scores["sanity_spearman"] = randomization_correlation(
            run.model,
            run.clean,
            run.clean_target,
            method,
            trained_maps=maps_clean,
            randomized=run.random_model,
            **options,
        )
    return scores, (maps_clean, maps_adv)


def _random_baseline(run: _Run) -> dict[str, Tensor]:
    """Faithfulness of a random pixel ranking, the floor every method must beat."""
    noise = [
        torch.rand(run.clean.shape[0], *run.clean.shape[2:], generator=run.generator)
        for _ in range(2)
    ]
    return {
        **_faithfulness(run, "clean", run.clean, noise[0], run.clean_target),
        **_faithfulness(run, "adversarial", run.adversarial, noise[1], run.adversarial_target),
    }


def _select(model: nn.Module, clean: Tensor, adv: Tensor, labels: Tensor, max_examples: int):
    """Indices of the first ``max_examples`` correct clean examples, and all predictions."""
    clean_pred, adv_pred = predict(model, clean), predict(model, adv)
    correct = torch.nonzero(clean_pred == labels.cpu()).flatten()
    return correct[:max_examples], clean_pred, adv_pred


def _display(
    run: _Run,
    report: ExplanationReport,
    preds: tuple[Tensor, Tensor, Tensor],
    maps: dict,
    n_display: int,
) -> ExplanationDisplay:
    labels, clean_pred, adv_pred = preds
    part = slice(0, n_display)
    return ExplanationDisplay(
        clean=run.clean[part].cpu(),
        adversarial=run.adversarial[part].cpu(),
        labels=labels[part],
        clean_pred=clean_pred[part],
        adversarial_pred=adv_pred[part],
        maps={m: (c[part].cpu(), a[part].cpu()) for m, (c, a) in maps.items()},
        spearman={m: report.scores[m]["spearman"][part] for m in maps},
    )


def _score_methods(
    run: _Run, report: ExplanationReport, options: Mapping[str, Mapping[str, object]]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Fill the report's per-method scores, random floor and IG completeness; return the maps."""
    maps = {}
    if len(report.indices) == 0:
        return maps
    for method in report.methods:
        report.scores[method], maps[method] = _method_scores(run, method, options[method])
    report.random_baseline = _random_baseline(run)
    if "ig" in maps:
        baseline = options["ig"].get("baseline", 0.0)
        report.ig_completeness_error = completeness_error(
            run.model, run.clean, maps["ig"][0], run.clean_target, baseline=baseline
        ).cpu()
    return maps


def _method_options(
    methods: Sequence[str], overrides: Mapping[str, Mapping[str, object]] | None
) -> dict[str, dict[str, object]]:
    """Each method's options (defaults, then ``overrides``); an unknown name is one error."""
    for method in [*methods, *(overrides or {})]:
        attribution_options(method)
    return {m: {**DEFAULT_OPTIONS.get(m, {}), **(overrides or {}).get(m, {})} for m in methods}


def _se_shift(
    model: nn.Module, clean: Tensor, adversarial: Tensor, labels: Tensor, count: int
) -> SEAttention | None:
    """The SE attention shift on the first ``count`` pairs (None for a model without SE)."""
    num_classes = getattr(model, "num_classes", int(labels.max()) + 1 if len(labels) else 1)
    subset = slice(0, count)
    return se_attention_shift(
        model, clean[subset], adversarial[subset], labels[subset], num_classes=num_classes
    )


def explain_robustness(
    model: nn.Module,
    clean_images: Tensor,
    adv_images: Tensor,
    labels: Tensor,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    k: int | None = None,
    seed: int = 0,
    max_examples: int = 32,
    target: str = "predicted",
    faithfulness_steps: int = 16,
    sanity: bool = True,
    n_display: int = 4,
    se_max_examples: int = 512,
    method_options: Mapping[str, Mapping[str, object]] | None = None,
) -> ExplanationReport:
    """Fragility (top-k intersection, Spearman), faithfulness (deletion/insertion AUC), the
    randomisation sanity check per method, and the SE attention shift for SE models.

    ``adv_images[i]`` is the adversarial example of ``clean_images[i]``. ``target``:
    "predicted" explains each input's predicted class (the adversarial class once fooled),
    "label" the true class on both. ``k`` defaults to an eighth of the pixels;
    ``method_options`` override ``DEFAULT_OPTIONS`` per method. Random draws are seeded
    by ``seed`` without changing the caller's random state. The SE attention shift uses the
    first ``se_max_examples`` pairs, whatever their prediction: one forward pass each.
    """
    started = time.perf_counter()
    _check_inputs(clean_images, adv_images, labels, target)
    options = _method_options(methods, method_options)
    labels, device = labels.cpu(), model_device(model)
    index, clean_pred, adv_pred = _select(model, clean_images, adv_images, labels, max_examples)
    num_pixels = clean_images.shape[-2] * clean_images.shape[-1]
    k = default_k(num_pixels) if k is None else k
    fooled = adv_pred[index] != labels[index]
    report = ExplanationReport(
        methods=list(methods),
        k=k,
        num_pixels=num_pixels,
        target=target,
        indices=index,
        fooled=fooled,
        scores={},
        random_baseline={},
    )
    explained = (labels, labels) if target == "label" else (clean_pred, adv_pred)
    inputs = [x[index].to(device) for x in (clean_images, adv_images, *explained)]
    with seeded(seed, device):
        randomized = randomized_copy(model, seed) if sanity else None
        generator = torch.Generator().manual_seed(seed)
        clean, adversarial, clean_target, adversarial_target = inputs
        run = _Run(
            model,
            randomized,
            clean,
            adversarial,
            clean_target=clean_target,
            adversarial_target=adversarial_target,
            k=k,
            steps=faithfulness_steps,
            generator=generator,
        )
        maps = _score_methods(run, report, options)
    preds = (labels[index], clean_pred[index], adv_pred[index])
    report.display = _display(run, report, preds, maps, n_display)
    report.se_attention = _se_shift(model, clean_images, adv_images, labels, se_max_examples)
    report.warnings = explanation_warnings(report, options)
    report.seconds = time.perf_counter() - started
    logger.info("explanations of %d examples in %.2f s", len(index), report.seconds)
    return report
