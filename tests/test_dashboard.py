"""robustlab-dashboard: the W&B workspace of a sweep, built and validated offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustlab.app.dashboard import main
from robustlab.tracking.dashboard import DashboardSpec, eps_rows, workspace_spec

RESULTS = {
    "clean_accuracy": 0.97,
    "robust_accuracy": {
        "worst_case": {"0.05": 0.8, "0.1": 0.5},
        "pgd": {"0.05": 0.85, "0.1": 0.6},
        "pgd_l2": {"0.5": 0.7},
        "cw": {"inf": 0.1},
    },
    "robust_accuracy_norm": {"worst_case": "Linf", "pgd": "Linf", "pgd_l2": "L2", "cw": "L2"},
}


def _panels(data: dict) -> dict[str, list[dict]]:
    sections = data["spec"]["section"]["panelBankConfig"]["sections"]
    return {s["name"]: s["panels"] for s in sections}


def test_eps_rows_put_every_attack_of_a_threat_model_on_one_eps_axis():
    assert eps_rows(RESULTS) == [
        {"robust_vs_eps/L2/eps": 0.5, "robust_vs_eps/L2/pgd_l2": 0.7},
        {
            "robust_vs_eps/Linf/eps": 0.05,
            "robust_vs_eps/Linf/worst_case": 0.8,
            "robust_vs_eps/Linf/pgd": 0.85,
        },
        {
            "robust_vs_eps/Linf/eps": 0.1,
            "robust_vs_eps/Linf/worst_case": 0.5,
            "robust_vs_eps/Linf/pgd": 0.6,
        },
    ]  # cw has no eps ("inf"): no row


def test_the_workspace_has_the_promised_panels():
    spec = DashboardSpec(
        "me",
        "robustlab",
        "pareto_trades-2026-12-02-0617",
        threat_models={"Linf": ["worst_case", "pgd"], "L2": ["worst_case_l2", "pgd_l2"]},
        knobs=["defense.beta", "train.lr"],
    )
    data = workspace_spec(spec)
    json.dumps(data)  # plain JSON
    panels = _panels(data)
    assert list(panels) == ["Linf threat model", "L2 threat model", "Trade-off"]
    lines = panels["L2 threat model"]
    assert {p["config"]["xAxis"] for p in lines} == {"robust_vs_eps/L2/eps"}
    assert [p["config"]["metrics"] for p in lines] == [
        ["robust_vs_eps/L2/worst_case_l2"],
        ["robust_vs_eps/L2/pgd_l2"],
    ]
    scatter, parallel = panels["Trade-off"]
    assert scatter["config"]["xAxis"] == "summary:clean_accuracy"
    assert scatter["config"]["yAxis"] == "summary:robust_accuracy/worst_case@0.1"
    axes = [c["accessor"] for c in parallel["config"]["columns"]]
    assert axes[:2] == ["config:defense.value.beta", "config:train.value.lr"]
    assert "summary:clean_accuracy" in axes and "summary:masking_suspected" in axes
    runs = data["spec"]["section"]["runSets"][0]
    pinned = [c for c, on in runs["runFeed"]["columnPinned"].items() if on]
    assert {
        "summary:masking_suspected",
        "summary:evaluation_card/trust",
        "config:defense.beta",
    } <= set(pinned)
    assert "pareto_trades-2026-12-02-0617" in json.dumps(runs["filters"])


def test_offline_cli_reads_the_sweep_and_writes_the_spec(tmp_path: Path, capsys):
    for job, beta in (("0", 1.0), ("1", 6.0)):
        folder = tmp_path / "sweep" / job
        folder.mkdir(parents=True)
        payload = {
            "status": "ok",
            "model": "resnet20",
            "defense": "trades",
            "seed": 0,
            "clean_accuracy": 0.9,
            **RESULTS,
            "overrides": ["experiment=beta_sweep", f"defense.beta={beta}"],
        }
        (folder / "results.json").write_text(json.dumps(payload))
    out = tmp_path / "ws.json"
    args = ["--entity", "me", "--project", "p", "--group", "g", "--sweep", str(tmp_path / "sweep")]
    assert main([*args, "--offline", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    panels = _panels(json.loads(out.read_text()))
    assert list(panels) == ["Linf threat model", "L2 threat model", "Trade-off"]
    assert panels["Linf threat model"][0]["config"]["metrics"] == ["robust_vs_eps/Linf/worst_case"]
    axes = [c["accessor"] for c in panels["Trade-off"][1]["config"]["columns"]]
    assert "config:defense.value.beta" in axes  # the one knob the jobs differ in
    assert main([*args, "--offline", "--report"]) == 2  # a report needs the W&B API
    assert "cannot be built offline" in capsys.readouterr().err


def test_online_without_an_api_key_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    code = main(["--entity", "me", "--project", "p", "--group", "g"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--offline" in err[0]


@pytest.mark.parametrize("missing", ["--entity", "--group"])
def test_entity_project_and_group_are_required(missing, capsys):
    args = {"--entity": "me", "--project": "p", "--group": "g"}
    args.pop(missing)
    with pytest.raises(SystemExit) as exit_info:
        main([item for pair in args.items() for item in pair])
    assert exit_info.value.code == 2
