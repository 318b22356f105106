"""The W&B workspace of a sweep, built in code with wandb-workspaces.

One section per threat model (robust accuracy vs eps: the worst case and each attack, from the
``robust_vs_eps/<norm>/...`` rows every job logs), a section for the trade-off (clean vs
worst-case scatter, parallel coordinates over the swept knobs and the accuracies), and the
runs table pinned to the columns that say how far to trust a run (masking flag, warnings, the
evaluation card's trust line). ``workspace_spec`` builds and validates the workspace
offline (pydantic validates every panel, and the wire model is what ``save`` would send);
``save_workspace`` needs an API key and the network. wandb-workspaces imports wandb, so
this module is, with [`robustlab.tracking.wandb_logger`][robustlab.tracking.wandb_logger], the only
one that may.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# the keys robustlab.tracking writes (results.summary_metrics and the logger's eps rows)
CURVE_PREFIX = "robust_vs_eps"
WORST_CASE = "worst_case"
# evaluation_card/trust: the card's trust line, which the logger's log_card writes
TRUST_COLUMNS = ["summary:masking_suspected", "summary:n_warnings", "summary:evaluation_card/trust"]


def curve_key(norm: str, attack: str) -> str:
    """History key of one robust-accuracy-vs-eps curve, e.g. ``robust_vs_eps/Linf/pgd``."""
    return f"{CURVE_PREFIX}/{norm}/{attack}"


def eps_rows(results: Mapping[str, Any]) -> list[dict[str, float]]:
    """History rows of a results.json's curves, one per threat model and eps:
    ``{robust_vs_eps/Linf/eps: 0.1, robust_vs_eps/Linf/pgd: 0.62, ...}``, so that a line plot
    with x = the eps key draws robust accuracy vs eps across the runs of a group."""
    norms = results.get("robust_accuracy_norm") or {}
    rows: dict[tuple[str, float], dict[str, float]] = {}
    for attack, curve in (results.get("robust_accuracy") or {}).items():
        norm = norms.get(attack, "Linf")
        for eps, accuracy in curve.items():
            try:
                value = float(eps)
            except ValueError:  # minimal-perturbation attacks ("inf") have no eps
                continue
            if accuracy is not None and value != float("inf"):
                row = rows.setdefault((norm, value), {curve_key(norm, "eps"): value})
                row[curve_key(norm, attack)] = accuracy
    return [rows[key] for key in sorted(rows)]


@dataclass
class DashboardSpec:
    """What the workspace shows: a sweep's W&B group, its threat models and their attacks, the
    eps of the trade-off panels, and the config keys the sweep varied."""

    entity: str
    project: str
    group: str
    threat_models: dict[str, list[str]] = field(
        default_factory=lambda: {"Linf": [WORST_CASE, "fgsm", "pgd", "pgd_margin"]}
    )
    eps: str = "0.1"
    knobs: list[str] = field(default_factory=lambda: ["model.name", "defense.name"])

    @property
    def robust_metric(self) -> str:
        """The summary key of the headline robust accuracy (worst case at ``eps``)."""
        return f"robust_accuracy/{WORST_CASE}@{self.eps}"


def _threat_model_section(norm: str, attacks: Sequence[str]) -> Any:
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    x = curve_key(norm, "eps")
    panels = [
        wr.LinePlot(
            title=f"{norm}: {'worst case' if attack == WORST_CASE else attack} vs eps",
            x=x,
            y=[curve_key(norm, attack)],
        )
        for attack in attacks
    ]
    return ws.Section(name=f"{norm} threat model", panels=panels, is_open=True)


def _tradeoff_section(spec: DashboardSpec) -> Any:
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(k)) for k in spec.knobs]
    columns += [
        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(m))
        for m in ("clean_accuracy", spec.robust_metric, "masking_suspected")
    ]
    panels = [
        wr.ScatterPlot(
            title=f"clean vs worst-case robust accuracy (eps {spec.eps})",
            x="clean_accuracy",
            y=spec.robust_metric,
        ),
        wr.ParallelCoordinatesPlot(title="swept knobs and accuracies", columns=columns),
    ]
    return ws.Section(name="Trade-off", panels=panels, is_open=True)


def build_workspace(spec: DashboardSpec) -> Any:
    """The ``wandb_workspaces.workspaces.Workspace`` of ``spec`` (validated as it is built)."""
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    sections = [_threat_model_section(n, a) for n, a in spec.threat_models.items() if a]
    sections.append(_tradeoff_section(spec))
    pinned = ["summary:clean_accuracy", f"summary:{spec.robust_metric}", *TRUST_COLUMNS]
    runset = ws.RunsetSettings(
        filters=[expr.Metric("Group") == spec.group],
        pinned_columns=pinned + [f"config:{k}" for k in spec.knobs],
    )
    return ws.Workspace(
        entity=spec.entity,
        project=spec.project,
        name=f"robustlab: {spec.group}",
        sections=sections,
        runset_settings=runset,
    )


def workspace_spec(spec: DashboardSpec) -> dict[str, Any]:
    """The workspace as the JSON object ``save`` would upload, built without the network."""
    # the wire model: the library's own conversion, the last step before its upload call
    return build_workspace(spec)._to_model().model_dump(mode="json", by_alias=True)


def save_workspace(spec: DashboardSpec) -> str:
    """Save the workspace to W&B (API key and network needed) and return its URL."""
    return build_workspace(spec).save().url


def save_report(spec: DashboardSpec) -> str:
    """Save a W&B Report of the sweep with the workspace's panels and return its URL.

    Online only: wandb-workspaces asks the W&B API for the user while it builds a report, so
    unlike the workspace a report cannot be built (or validated) offline.
    """
    import wandb_workspaces.reports.v2 as wr

    runset = wr.Runset(
        entity=spec.entity, project=spec.project, filters=f"Metric('Group') = '{spec.group}'"
    )
    blocks: list[Any] = [wr.H1(f"Sweep {spec.group}")]
    for section in build_workspace(spec).sections:
        blocks += [wr.H2(section.name), wr.PanelGrid(runsets=[runset], panels=section.panels)]
    report = wr.Report(
        entity=spec.entity, project=spec.project, title=f"robustlab: {spec.group}", blocks=blocks
    )
    return report.save().url


def spec_summary(data: Mapping[str, Any]) -> list[str]:
    """Titles of the sections of a workspace JSON object, for a one-line-per-section listing."""
    sections = data["spec"]["section"]["panelBankConfig"]["sections"]
    return [section["name"] for section in sections]
