"""The evaluation stage: robust accuracy under every configured attack over the eps grid, and
(``eval.l0.budgets``) under the sparse attacks over a budget of changed pixels. Reads the
``eval`` node only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from robustlab.app.builders import StageInputs, attack_specs
from robustlab.attacks import AttackSpec
from robustlab.data import stratified_subset
from robustlab.distributed import broadcast_object, is_main_process, rank, world_size
from robustlab.errors import ConfigError
from robustlab.evaluation import InputNoise, RobustnessReport, evaluate_robustness
from robustlab.evaluation.l0 import L0Report, l0_robustness
from robustlab.models.acceleration import amp_dtype
from robustlab.models.inference import model_device
from robustlab.models.layers.normalize import NO_PREPROCESSING, describe_preprocessing


@dataclass(repr=False)  # RobustnessReport's short summary, not every curve and tensor
class EvaluationReport(RobustnessReport):
    """The stage's result: the eps-grid `RobustnessReport` (what later stages read) and
    the L0 curves, when configured; ``robust_accuracy_norm`` gains ``"L0"`` for each of them."""

    l0: L0Report | None = None
    world_size: int = 1  # the processes that evaluated (sharded under torchrun/SLURM)
    preprocessing: str = NO_PREPROCESSING  # what the model does to its [0, 1] inputs

    @classmethod
    def extend(
        cls, report: RobustnessReport, l0: L0Report | None, preprocessing: str
    ) -> EvaluationReport:
        """``report`` with the L0 curves and the model's preprocessing added."""
        fields_ = {f.name: getattr(report, f.name) for f in fields(report)}
        return cls(**fields_, l0=l0, world_size=world_size(), preprocessing=preprocessing)

    def to_results(self) -> dict:
        """The eps-grid fields with the L0 fields merged into the same keys, the number of
        processes (``evaluation.world_size``) and the model's preprocessing (for the card)."""
        results = super().to_results() | {"evaluation": {"world_size": self.world_size}}
        results["preprocessing"] = self.preprocessing
        for key, value in (self.l0.to_results() if self.l0 is not None else {}).items():
            results[key] = results.get(key, {}) | value if isinstance(value, dict) else value
        return results


STATE_FILE = "eval_state.safetensors"


def evaluation_state_path(out: Path) -> Path:
    """The evaluation's resumable state beside results.json: ``eval_state.safetensors``, one
    per process under torchrun/SLURM (all in the job directory, rank 0's: the other ranks'
    output directories are temporary)."""
    directory = Path(broadcast_object(str(out)))
    if world_size() == 1:
        return directory / STATE_FILE
    return directory / f"eval_state.rank{rank()}of{world_size()}.safetensors"


def evaluate_stage(
    ev: DictConfig,
    inputs: StageInputs,
    keep: Sequence[tuple[str, float]] = (),
    out: Path | None = None,
) -> EvaluationReport:
    """Clean and robust accuracy (per attack and the per-example worst case over all of them),
    confidence intervals, attack cost and masking warnings on ``inputs.test``, then the L0
    curves when ``eval.l0.budgets`` is set. ``keep``: ``(attack, eps)`` pairs whose adversarial
    images stay in ``report.adversarial``, so that later stages use these very examples instead
    of attacking again. ``out``: the job directory, where the evaluation keeps its state
    (`evaluation_state_path`; ``eval.resume``: continue from it). Under torchrun/SLURM
    the examples are sharded across the processes; the L0 curves run on rank 0."""
    l0_specs = l0_attacks(ev)  # checked before any attack runs
    images, labels = inputs.test
    model = inputs.model  # with eval.inference_noise: its input noise on (EOT then applies)
    model = model if ev.inference_noise is None else InputNoise(model, ev.inference_noise)
    report = evaluate_robustness(
        model,
        images,
        labels,
        attack_specs(ev),
        eps_grid=list(ev.eps),
        batch_size=ev.batch_size,
        large_eps=ev.large_eps,
        schedule=ev.schedule,
        continuation_steps=ev.continuation_steps,
        suite=ev.suite,
        seed=inputs.seed,
        keep_adversarial=keep,
        eot_iter=ev.eot_iter,
        draws=ev.draws,
        crafting_dtype=amp_dtype(ev.amp, model_device(inputs.model), "eval.amp"),
        sharded=True,
        state_path=None if out is None else evaluation_state_path(out),
        resume=ev.resume,
    )
    l0 = None
    if l0_specs and is_main_process():
        l0_images, l0_labels = stratified_subset(images, labels, ev.l0.max_examples, inputs.seed)
        l0 = l0_robustness(
            inputs.model,
            l0_images,
            l0_labels,
            l0_specs,
            budgets=list(ev.l0.budgets),
            batch_size=ev.batch_size,
        )
    return EvaluationReport.extend(report, l0, describe_preprocessing(inputs.model))


def l0_attacks(ev: DictConfig) -> dict[str, AttackSpec]:
    """The sparse attacks of ``eval.l0`` keyed by lower-case name ({} when no budget is set);
    a key another curve of results.json already uses is a ConfigError."""
    l0 = ev.l0
    if not l0.budgets:
        return {}
    options = OmegaConf.to_container(l0.options, resolve=True)
    unknown = sorted(set(options) - set(l0.attacks))
    if unknown:
        raise ConfigError(f"eval.l0.options names attacks not in eval.l0.attacks: {unknown}")
    specs = {str(n).lower(): AttackSpec(str(n), dict(options.get(n, {}))) for n in l0.attacks}
    clash = sorted(set(specs) & ({"worst_case", *ev.attacks}))
    if clash or len(specs) < len(l0.attacks):
        raise ConfigError(
            f"eval.l0.attacks {list(l0.attacks)} repeat a name or reuse an eval.attacks key "
            f"({clash}): every curve of results.json needs its own key"
        )
    return specs
