"""The "Inside the representations" section: inversion findings and the SE overhead table."""

from __future__ import annotations

from pathlib import Path

from robustlab.fileio import write_json_atomic
from robustlab.report import write_report


def _layers(*pixel: float) -> dict:
    keys = [f"stage{i}" for i in range(len(pixel) - 1)] + ["logits"]
    return {
        k: {"pixel_error": p, "feature_error": p / 10} for k, p in zip(keys, pixel, strict=True)
    }


def _job(root: Path, job: str, model: str, defense: str, **extra) -> None:
    payload = {
        "status": "ok",
        "dataset": "digits",
        "model": model,
        "defense": defense,
        "seed": 0,
        "clean_accuracy": 0.9,
        "robust_accuracy": {"worst_case": {"0.1": 0.5}},
        "overrides": [f"model={model}", f"defense={defense}"] + extra.pop("overrides", []),
    }
    write_json_atomic(root / job / "results.json", payload | extra)


def _section(text: str) -> list[str]:
    return text.split("## Inside the representations")[1].split("\n## ")[0].splitlines()


def test_inversion_findings_count_growing_errors_and_compare_robust_to_standard(tmp_path):
    sweep = tmp_path / "sweep"
    _job(
        sweep,
        "0",
        "resnet20",
        "none",
        explanations={"inversion": {"layers": _layers(0.1, 0.2, 0.3)}},
    )
    _job(
        sweep,
        "1",
        "resnet20",
        "pgd_at",
        explanations={"inversion": {"layers": _layers(0.1, 0.15, 0.4)}},
    )
    _job(
        sweep,
        "2",
        "se_resnet20",
        "none",
        explanations={"inversion": {"layers": _layers(0.3, 0.2, 0.5)}},
    )
    lines = _section(write_report(sweep).summary.read_text(encoding="utf-8"))
    assert "| resnet20 / pgd_at | 0.100 / 0.010 | 0.150 / 0.015 | 0.400 / 0.040 |" in lines
    assert (
        "- Pixel error grows stage by stage (early layers keep more of the input) in 2 of 3 "
        "configurations." in lines
    )
    assert any(
        line.startswith("- resnet20 / pgd_at: pixel error at stage1 0.150 against 0.200")
        and line.endswith("closer to the original")
        for line in lines
    )


def test_se_overhead_rows_are_ordered_by_reduction(tmp_path):
    sweep = tmp_path / "sweep"
    for job, r in enumerate((16, 4)):
        overhead = {"reduction": r, "blocks": 9, "exact_params": 1000 + r, "eq5_params": 20000 / r}
        _job(sweep, str(job), "se_resnet20", "none", se_overhead=overhead,
             overrides=[f"model.se_reduction={r}"])  # fmt: skip
    _job(sweep, "2", "resnet20", "none")
    lines = _section(write_report(sweep).summary.read_text(encoding="utf-8"))
    rows = [line for line in lines if line.startswith("| se_resnet20")]
    assert [row.split(" | ")[1:4] for row in rows] == [
        ["4", "1004", "5000"],
        ["16", "1016", "1250"],
    ]
    assert all(row.endswith("| 90.0 | 50.0 |") for row in rows)
    assert not any(line.startswith("| resnet20") for line in lines)


def test_no_section_without_inversions_or_se_blocks(tmp_path):
    sweep = tmp_path / "sweep"
    _job(sweep, "0", "resnet20", "none")
    assert "Inside the representations" not in write_report(sweep).summary.read_text("utf-8")


def test_the_inversion_figure_puts_standard_before_robust_rows(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from robustlab.explain.inversion_study import INVERSIONS_FILE

    sweep = tmp_path / "sweep"
    for job, defense in (("0", "pgd_at"), ("1", "none")):
        inversion = {"inversion": {"layers": _layers(0.1, 0.2)}}
        _job(sweep, job, "resnet20", defense, explanations=inversion, job_dir=str(sweep / job))
        arrays = {
            k: np.full((2, 1, 8, 8), 0.5, np.float32) for k in ("originals", "stage0", "logits")
        }
        save_file(arrays, str(sweep / job / INVERSIONS_FILE))
    _job(sweep, "2", "se_resnet20", "none", explanations=inversion)  # no file: no row
    paths = write_report(sweep)
    figure = next(p for p in paths.plots if p.name == "inversions.png")
    with open(figure, "rb") as handle:
        head = handle.read(4096)
    assert head.startswith(b"\x89PNG")
    assert b"rows: resnet20 / none; resnet20 / pgd_at" in head
