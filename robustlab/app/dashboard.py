"""``robustlab-dashboard``: the W&B workspace of a sweep, built in code.

``robustlab-dashboard --entity E --project P --group G`` saves the workspace and prints its URL
(W&B API key and network needed); ``--offline --out spec.json`` builds and validates the same
workspace and writes it as JSON, touching no network. ``--sweep DIR`` (a local sweep folder)
fills in the threat models, attacks, eps and swept knobs the sweep actually has; ``--report``
also saves a W&B Report of the sweep (online only: wandb-workspaces needs a login to build one).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from robustlab.errors import RobustlabError
from robustlab.fileio import write_json_atomic
from robustlab.report.pareto import search_objective
from robustlab.report.plots import choose_frontier_eps
from robustlab.report.records import load_run_records, parse_override
from robustlab.report.tables import aggregate_over_seeds, job_variants
from robustlab.tracking.dashboard import (
    WORST_CASE,
    DashboardSpec,
    save_report,
    save_workspace,
    spec_summary,
    workspace_spec,
)

PROG = "robustlab-dashboard"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``robustlab-dashboard``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--entity", required=True, help="W&B user or team")
    parser.add_argument("--project", required=True, help="W&B project (logger.project)")
    parser.add_argument("--group", required=True, help="the sweep's W&B group")
    parser.add_argument("--sweep", default=None, help="local sweep folder to read panels from")
    parser.add_argument("--eps", default=None, help="eps of the trade-off panels (default 0.1)")
    parser.add_argument("--offline", action="store_true", help="build and validate, no network")
    parser.add_argument("--out", default="workspace.json", help="JSON file of --offline")
    parser.add_argument("--report", action="store_true", help="also save a W&B Report (online)")
    return parser


def spec_from_sweep(spec: DashboardSpec, sweep_dir: str | Path) -> DashboardSpec:
    """Threat models with their attacks (worst case first), the eps of the search's objective
    (else the median common one) and the knobs that differ between jobs, read from a sweep."""
    records = [r for r in load_run_records(sweep_dir) if r.ok]
    if not records:
        raise RobustlabError(f"no finished job under {sweep_dir}: pass a sweep folder")
    norms: dict[str, list[str]] = {}
    for record in records:
        for attack, curve in record.robust_accuracy.items():
            if all(eps == "inf" for eps in curve):  # minimal-perturbation attacks: no eps axis
                continue
            norm = record.robust_accuracy_norm.get(attack, "Linf")
            known = norms.setdefault(norm, [])
            known.extend([] if attack in known else [attack])
    for attacks in norms.values():
        attacks.sort(key=lambda attack: (WORST_CASE not in attack, attack))
    objective = search_objective(sweep_dir)
    eps = (
        objective[1]
        if objective
        else choose_frontier_eps(aggregate_over_seeds(records), WORST_CASE)
    )
    variants = job_variants(records).values()
    knobs = sorted({parse_override(part)[0] for text in variants for part in text.split()})
    spec.threat_models = norms or spec.threat_models
    spec.eps = eps or spec.eps
    spec.knobs = list(dict.fromkeys(["model.name", "defense.name", *knobs]))
    return spec


def run(args: argparse.Namespace) -> None:
    """Build the spec; write it (offline) or save the workspace (and report) and print URLs."""
    spec = DashboardSpec(args.entity, args.project, args.group)
    if args.sweep is not None:
        spec = spec_from_sweep(spec, args.sweep)
    if args.eps is not None:
        spec.eps = repr(float(args.eps))
    if args.offline:
        if args.report:
            raise RobustlabError(
                "a W&B Report cannot be built offline (wandb-workspaces asks the W&B API for "
                "the user while building one); drop --offline, or build the workspace alone"
            )
        data = workspace_spec(spec)
        write_json_atomic(args.out, data)
        print(f"workspace spec ({', '.join(spec_summary(data))}): {args.out}")
        return
    print(f"workspace: {save_workspace(spec)}")
    if args.report:
        print(f"report: {save_report(spec)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 2 on bad input, 1 when W&B refuses (no API key, no network), 0 otherwise."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (RobustlabError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the W&B API: login, network, permissions
        print(
            f"{PROG}: error: W&B could not save it ({type(exc).__name__}: {exc}); check "
            "`wandb login` and the network, or build it offline with --offline --out FILE",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
