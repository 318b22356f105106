"""The evaluation card: one robust accuracy and how far to trust it, after RobustBench's model
cards. Threat model, clean and worst-case accuracy with 95% intervals per eps, which attack
first broke how many examples, the cost, every named check, and one plain-language line.

A card is read from the results.json fields of an evaluation (`EvaluationCard.
from_results`), so the pipeline's results.json and `robustlab.evaluation.evaluate` give
the same card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustlab.evaluation.checks import PASS, WARN, Check
from robustlab.fileio import atomic_path, write_json_atomic

CARD_MARKDOWN = "evaluation_card.md"
CARD_JSON = "evaluation_card.json"


@dataclass(repr=False)
class EvaluationCard:
    """How robust a model is under one threat model, and how far to trust the number.

    ``worst_case[eps key]``: the per-example worst case over every attack run (eps keys are
    ``repr(float(eps))``); ``ci[eps key]``: its 95% Wilson interval; ``checks[name]``: a
    `Check`. ``draws`` > 1: a randomized model, each
    prediction the majority over ``draws`` forwards, attacked with ``eot_iter`` EOT gradients.
    """

    clean_accuracy: float
    worst_case: dict[str, float]
    ci: dict[str, tuple[float, float]]
    checks: dict[str, Check]
    norm: str = "Linf"
    n: int = 0
    suite: str = "standard"
    data: str = "unknown"
    preprocessing: str = "none: the model takes [0, 1] images"
    first_broken_by: dict[str, dict[str, int]] = field(default_factory=dict)
    cost: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float | None = None
    eot_iter: int = 1
    draws: int = 1
    notes: list[str] = field(default_factory=list)  # e.g. the model was switched to eval mode

    @classmethod
    def from_results(cls, results: dict[str, Any], **threat: Any) -> EvaluationCard:
        """The card of an evaluation's results.json fields; ``threat``: the fields results.json
        does not hold (``data``, ``preprocessing``, ``seconds``), or overrides."""
        block = results.get("worst_case", {})
        eot = block.get("eot", {})
        intervals = results.get("robust_accuracy_ci", {}).get("worst_case", {})
        fields = {
            "clean_accuracy": float(results.get("clean_accuracy", 0.0)),
            "worst_case": dict(results.get("robust_accuracy", {}).get("worst_case", {})),
            "ci": {k: (lo, hi) for k, (lo, hi) in intervals.items()},
            "checks": {k: Check.from_results(v) for k, v in results.get("checks", {}).items()},
            "norm": block.get("norm", "Linf"),
            "n": int(block.get("n", results.get("n_eval", 0))),
            "suite": block.get("suite", "none"),
            "first_broken_by": block.get("first_broken_by", {}),
            "cost": block.get("attack_cost", {}),
            "eot_iter": int(eot.get("eot_iter", 1)),
            "draws": int(eot.get("draws", 1)),
            "notes": list(block.get("notes", [])),
        }
        if "dataset" in results:
            fields["data"] = str(results["dataset"])
        return cls(**(fields | threat))

    @property
    def warnings(self) -> list[str]:
        """The names of the checks that warn."""
        return [name for name, check in self.checks.items() if check.status == WARN]

    @property
    def trust(self) -> str:
        """One plain-language line on how far to trust the worst-case accuracy."""
        if not self.worst_case:
            return "No robust accuracy was measured: nothing to trust yet."
        widest = max((hi - lo for lo, hi in self.ci.values()), default=1.0)
        spread = f"its 95% intervals are up to {widest:.1%} wide on {self.n} examples"
        if self.warnings:
            return (
                f"Do not trust it yet: {', '.join(self.warnings)} warned, so "
                f"{self._what_may_be_wrong()} ({spread})."
            )
        return (
            f"An upper bound that every check supports: the attacks show no sign of failing, "
            f"yet a stronger or adaptive attack could still lower it ({spread})."
        )

    def _what_may_be_wrong(self) -> str:
        """Which way the warned checks may move the number: a failing attack overstates
        robustness (it may be lower); single-draw verdicts on a randomized model count noise
        as breaks (it may be higher)."""
        warned = set(self.warnings)
        noisy_verdicts = "stochastic_forward" in warned and self.draws == 1
        noisy_gradients = "stochastic_forward" in warned and self.eot_iter == 1
        failing = bool(warned - {"stochastic_forward"}) or noisy_gradients
        lower = "the attacks may have failed and the true robust accuracy may be lower"
        higher = (
            "single noisy forwards judged the breaks and the true robust accuracy may be higher"
        )
        if noisy_verdicts and not failing:
            return higher
        return f"{lower}, while {higher}" if noisy_verdicts else lower

    def to_results(self) -> dict[str, Any]:
        """The results.json fields of the card (robust_accuracy, its CI, checks, trust)."""
        return {
            "clean_accuracy": self.clean_accuracy,
            "n_eval": self.n,
            "robust_accuracy": {"worst_case": dict(self.worst_case)},
            "robust_accuracy_ci": {"worst_case": {k: list(v) for k, v in self.ci.items()}},
            "checks": {name: check.to_results() for name, check in self.checks.items()},
            "trust": self.trust,
        }

    def to_json(self) -> dict[str, Any]:
        """The whole card as plain JSON (``evaluation_card.json``)."""
        return {
            "threat_model": self.threat_model(),
            "clean_accuracy": self.clean_accuracy,
            "worst_case": dict(self.worst_case),
            "ci": {k: list(v) for k, v in self.ci.items()},
            "first_broken_by": self.first_broken_by,
            "cost": self.cost | {"total_seconds": self.seconds},
            "checks": {name: check.to_results() for name, check in self.checks.items()},
            "trust": self.trust,
        }

    def threat_model(self) -> dict[str, Any]:
        """Norm, eps grid, data, n, preprocessing, suite and how randomness was handled."""
        return {
            "norm": self.norm,
            "eps": [float(k) for k in self.worst_case],
            "data": self.data,
            "n": self.n,
            "preprocessing": self.preprocessing,
            "suite": self.suite,
            "eot_iter": self.eot_iter,
            "draws": self.draws,
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """The accuracy table: clean, then the worst case per eps with its 95% interval."""
        rows = ["| eps | worst-case accuracy | 95% CI |", "|---|---|---|"]
        rows.append(f"| clean | {self.clean_accuracy:.4f} | |")
        for key, accuracy in self.worst_case.items():
            lo, hi = self.ci.get(key, (float("nan"), float("nan")))
            rows.append(f"| {key} | {accuracy:.4f} | [{lo:.4f}, {hi:.4f}] |")
        return "\n".join(rows)

    def to_markdown(self) -> str:
        """The card as Markdown (``evaluation_card.md``)."""
        threat = self.threat_model()
        eps = ", ".join(f"{e:g}" for e in threat["eps"])
        randomness = (
            f"randomized forward: EOT with {self.eot_iter} gradients per APGD step, each "
            f"prediction the majority over {self.draws} draws"
            if self.draws > 1 or self.eot_iter > 1
            else "deterministic forward (one draw per prediction)"
        )
        lines = [
            "# Evaluation card",
            "",
            f"**Trust.** {self.trust}",
            "",
            "## Threat model",
            "",
            f"- norm {self.norm}, eps {eps}; data {self.data}, n = {self.n}",
            f"- preprocessing: {self.preprocessing}",
            f"- suite {self.suite}; {randomness}",
            *(f"- {note}" for note in self.notes),
            "",
            "## Accuracy (worst case over every attack run)",
            "",
            self.table(),
            "",
            "## Which attack first broke how many examples",
            "",
            *_broken_by_rows(self.first_broken_by),
            "",
            "## Cost",
            "",
            *_cost_rows(self.cost, self.seconds),
            "",
            "## Checks",
            "",
            "| check | verdict | detail |",
            "|---|---|---|",
            *(f"| {name} | {c.status} | {c.detail} |" for name, c in self.checks.items()),
        ]
        return "\n".join(lines)

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``evaluation_card.md`` and ``evaluation_card.json`` into ``directory``
        atomically; returns their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        markdown, data = directory / CARD_MARKDOWN, directory / CARD_JSON
        with atomic_path(markdown) as tmp:
            Path(tmp).write_text(self.to_markdown() + "\n", encoding="utf-8")
        write_json_atomic(data, self.to_json())
        return [markdown, data]

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{name}: {check.status}" for name, check in self.checks.items())
        return (
            f"EvaluationCard({self.norm}, {self.suite}, n={self.n})\n{self.table()}\n"
            f"checks: {verdicts or 'none'}\n{self.trust}"
        )


def _broken_by_rows(table: dict[str, dict[str, int]]) -> list[str]:
    attacks = sorted({name for counts in table.values() for name in counts})
    if not attacks:
        return ["no attack broke any example"]
    rows = ["| eps | " + " | ".join(attacks) + " |", "|---" * (len(attacks) + 1) + "|"]
    for key, counts in table.items():
        rows.append(f"| {key} | " + " | ".join(str(counts.get(a, 0)) for a in attacks) + " |")
    return rows


def _cost_rows(cost: dict[str, dict[str, float]], seconds: float | None) -> list[str]:
    rows = ["| attack | gradient evals | forward evals | seconds |", "|---|---|---|---|"]
    for name, c in cost.items():
        rows.append(
            f"| {name} | {int(c.get('grad_evals', 0))} | {int(c.get('forward_evals', 0))} | "
            f"{c.get('seconds', 0.0):.1f} |"
        )
    if seconds is not None:
        rows.append(f"| total (attacks and checks) | | | {seconds:.1f} |")
    return rows


def load_card(path: str | Path) -> dict[str, Any]:
    """An ``evaluation_card.json`` read back as plain JSON."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


__all__ = ["CARD_JSON", "CARD_MARKDOWN", "PASS", "WARN", "EvaluationCard", "load_card"]
