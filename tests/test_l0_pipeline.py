"""L0 and L1 in the pipeline: eval.l0 runs the sparse attacks in the evaluation stage, results.json
holds their pixel-budget curves under robust_accuracy with every curve's norm, and the sweep
report of that run shows one group per threat model."""

from __future__ import annotations

import pytest

from robustlab.app.evaluation_stage import l0_attacks
from robustlab.app.pipeline import run_pipeline
from robustlab.app.validate import validate_config
from robustlab.errors import ConfigError
from robustlab.report.sweep import write_report
from tests.app_helpers import compose_tiny

L0_RUN = (
    "eval.l0.budgets=[0,1,5]",
    "eval.l0.attacks=[OnePixel,JSMA]",
    "eval.l0.max_examples=16",
    "+attack@eval.attacks.apgd_l1=apgd_l1",
    "eval.attacks.apgd_l1.options.steps=5",
)


@pytest.fixture(scope="module")
def l0_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("l0")
    return run_pipeline(compose_tiny(root, *L0_RUN), root / "sweep" / "0"), root


def test_results_hold_the_l0_and_l1_curves_with_their_norms(l0_run):
    payload, _ = l0_run
    robust, norms = payload["robust_accuracy"], payload["robust_accuracy_norm"]
    assert set(robust) == set(norms)
    assert {k: norms[k] for k in ("worst_case", "pgd", "fgsm")} == dict.fromkeys(
        ("worst_case", "pgd", "fgsm"), "Linf"
    )
    assert norms["apgd_l1"] == "L1" and list(robust["apgd_l1"]) == ["1.0", "2.0", "4.0"]
    for key in ("onepixel", "jsma", "l0_worst_case"):
        assert norms[key] == "L0" and list(robust[key]) == ["0", "1", "5"]
        curve = list(robust[key].values())
        assert curve == sorted(curve, reverse=True)  # a larger budget never helps the model
    worst, sparse = robust["l0_worst_case"], (robust["onepixel"], robust["jsma"])
    assert all(worst[k] <= min(c[k] for c in sparse) for k in worst)  # per-example worst case
    assert payload["l0_n_eval"] >= 16 and set(payload["l0_seconds"]) == {"onepixel", "jsma"}
    assert payload["worst_case"]["norm"] == "Linf"  # the suite's worst case stays Linf


def test_the_report_of_the_run_groups_its_curves_by_norm(l0_run):
    _, root = l0_run
    text = write_report(root / "sweep").summary.read_text()
    accuracy = text.split("## Accuracy")[1]
    order = ["### Linf threat model", "### L1 threat model", "### L0 threat model"]
    assert [accuracy.index(h) for h in order] == sorted(accuracy.index(h) for h in order)
    assert "onepixel ≤1 px" in accuracy and "## Best configuration per eps (worst_case)" in text


def test_l0_is_off_by_default_and_bad_l0_configs_fail_early(tmp_path):
    cfg = compose_tiny(tmp_path)
    validate_config(cfg)
    assert cfg.eval.l0.budgets is None and l0_attacks(cfg.eval) == {}
    with pytest.raises(ConfigError, match="out of range"):
        validate_config(compose_tiny(tmp_path, "eval.l0.budgets=[-1,2]"))
    with pytest.raises(ConfigError, match="own key"):
        l0_attacks(compose_tiny(tmp_path, "eval.l0.budgets=[1]", "eval.l0.attacks=[PGD]").eval)
    with pytest.raises(ConfigError, match="not in eval.l0.attacks"):
        l0_attacks(compose_tiny(tmp_path, "eval.l0.budgets=[1]", "+eval.l0.options.Square={}").eval)
    specs = l0_attacks(compose_tiny(tmp_path, "eval.l0.budgets=[1]").eval)
    assert [s.name for s in specs.values()] == ["SparseFool", "JSMA", "OnePixel"]
