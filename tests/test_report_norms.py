"""The report groups curves by threat model: Linf, L2, L1 and L0 (over pixels changed) get
their own tables and their own row of panels; the Linf worst case still leads; results.json
files without the norm record still read."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
from PIL import Image

from robustlab import figures
from robustlab.report.records import record_from_payload
from robustlab.report.sweep import write_report

LINF = {"0.05": 0.6, "0.1": 0.3}
NORMS = {
    "worst_case": "Linf",
    "pgd": "Linf",
    "apgd_l1": "L1",
    "jsma": "L0",
    "l0_worst_case": "L0",
}


def _payload(defense: str, shift: float) -> dict:
    return {
        "schema_version": 2,
        "status": "ok",
        "dataset": "digits",
        "model": "resnet20",
        "defense": defense,
        "seed": 0,
        "clean_accuracy": 0.95,
        "robust_accuracy": {
            "worst_case": {e: a + shift - 0.05 for e, a in LINF.items()},
            "pgd": {e: a + shift for e, a in LINF.items()},
            "apgd_l1": {"1.0": 0.5 + shift, "2.0": 0.2 + shift},
            "jsma": {"0": 0.95, "1": 0.9, "5": 0.4 + shift},
            "l0_worst_case": {"0": 0.95, "1": 0.8, "5": 0.3 + shift},
        },
        "robust_accuracy_norm": NORMS,
        "worst_case": {"suite": "fast", "norm": "Linf"},
        "overrides": [f"defense={defense}"],
    }


def _sweep(root: Path) -> Path:
    for job, (defense, shift) in enumerate([("none", 0.0), ("pgd_at", 0.2)]):
        directory = root / str(job)
        directory.mkdir(parents=True)
        (directory / "results.json").write_text(json.dumps(_payload(defense, shift)))
    return root


def test_tables_come_in_one_group_per_norm_led_by_the_linf_worst_case(tmp_path):
    paths = write_report(_sweep(tmp_path / "sweep"), tmp_path / "out")
    text = paths.summary.read_text()
    accuracy = text.split("## Accuracy")[1].split("## Best configuration")[0]
    linf = accuracy.index("### Linf threat model")
    l1 = accuracy.index("### L1 threat model")
    l0 = accuracy.index("### L0 threat model (budget: pixels changed)")
    assert linf < l1 < l0 and "### L2 threat model" not in accuracy
    assert linf < accuracy.index("#### Under worst_case") < accuracy.index("#### Under pgd") < l1
    assert l1 < accuracy.index("#### Under apgd_l1") < l0
    assert l0 < accuracy.index("#### Under l0_worst_case") < accuracy.index("#### Under jsma")
    assert "| l0_worst_case ≤5 px |" in accuracy and "apgd_l1 eps=2.0" in accuracy
    assert "jsma eps=" not in accuracy  # an L0 budget is pixels, never an eps
    # the ranking still follows the Linf worst case, not the L0 or L1 ones
    assert "## Best configuration per eps (worst_case)" in text


def test_the_robust_figure_has_one_row_of_panels_per_norm(tmp_path):
    paths = write_report(_sweep(tmp_path / "sweep"), tmp_path / "out")
    figure = next(p for p in paths.plots if p.name == "robust_vs_eps.png")
    panels = Image.open(figure).text["Description"].split("; ")
    assert panels == [
        "Linf: worst case over the Linf attacks [eps (Linf)]",
        "Linf: pgd [eps (Linf)]",
        "L1: apgd_l1 [eps (L1)]",
        "L0: worst case over the L0 attacks [pixels changed]",
        "L0: jsma [pixels changed]",
    ]
    # three rows (Linf: 2 panels, L1: 1, L0: 2), not the 3 rows x 2 of five packed panels
    width, height = figures.figure_size(5, rows=3)
    image = matplotlib.image.imread(figure)
    assert image.shape[:2] == (round(height * figures.DPI), round(width * figures.DPI))


def test_files_without_the_norm_record_still_read():
    old = {
        "status": "ok",
        "robust_accuracy": {
            "worst_case": {"0.1": 0.2},
            "pgd": {"0.1": 0.3},
            "pgd_l2": {"0.5": 0.4},
        },
        "worst_case": {"suite": "standard", "norm": "Linf"},
    }
    record = record_from_payload("0", old)
    assert record.robust_accuracy_norm == {"worst_case": "Linf", "pgd": "Linf", "pgd_l2": "L2"}
    new = dict(old, robust_accuracy_norm={"pgd_l2": "L2", "pgd": "L1", "worst_case": 3})
    record = record_from_payload("0", new)
    assert record.robust_accuracy_norm == {"worst_case": "Linf", "pgd": "L1", "pgd_l2": "L2"}
