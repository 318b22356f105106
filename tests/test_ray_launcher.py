"""hydra/launcher=ray_local: a sweep's jobs as tasks on a local Ray (the ``ray`` extra)."""

from __future__ import annotations

import json

import pytest

from tests.app_helpers import run_console

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the ray extra is not installed")


@pytest.mark.slow
def test_a_sweep_runs_its_jobs_on_a_local_ray(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_console(
        "robustlab-train",
        "-m",
        "hydra/launcher=ray_local",
        "hydra.launcher.ray.init.num_cpus=1",
        "experiment=tiny",
        "detector=none",
        "logger=none",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=600,
        RAY_AUTH_MODE="disabled",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert [(r["status"], r["seed"]) for r in results] == [("ok", 0), ("ok", 1)]
    assert (sweep / "report" / "summary.md").is_file()
