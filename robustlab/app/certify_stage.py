"""The certification stage: smoothing certificate, Lipschitz margins, minimum-norm margins.
Reads the ``certify`` node only; the training noise and the evaluation come in as values."""

from __future__ import annotations

from omegaconf import DictConfig

from robustlab.app.builders import StageInputs
from robustlab.certify import CertificationReport, certify_model
from robustlab.evaluation import RobustnessReport


def certify_stage(
    c: DictConfig,
    inputs: StageInputs,
    noise_sigma: float | None = None,
    evaluation: RobustnessReport | None = None,
) -> CertificationReport:
    """Certify the first ``certify.max_examples`` examples of the evaluation's test subset.

    The smoothing sigma is ``certify.sigma``, else ``noise_sigma`` (the std of the noise the
    model was trained with, ``defense=gaussian_noise``); neither: no smoothing certificate.
    With the evaluation's worst case at hand, its per-example smallest breaking eps bounds the
    minimum-norm search from above, so the min-norm curve is never above the fixed-eps one.
    """
    images, labels = inputs.test
    count = len(images) if c.max_examples is None else min(c.max_examples, len(images))
    suite = {}
    worst = evaluation.worst_case if evaluation is not None else None
    if worst is not None:
        suite[worst.norm] = worst.broken_eps[:count]
    return certify_model(
        inputs.model,
        images[:count],
        labels[:count],
        num_classes=inputs.bundle.info.num_classes,
        sigma=c.sigma if c.sigma is not None else noise_sigma,
        n0=c.n0,
        n=c.n,
        alpha=c.alpha,
        radii=list(c.radii),
        batch_size=c.batch_size,
        lipschitz=c.lipschitz,
        min_norm=list(c.min_norm),
        min_norm_steps=c.min_norm_steps,
        suite_min_eps=suite,
        seed=inputs.seed,
    )
