"""The two-objective Optuna sweeper (hydra_plugins/robustlab_optuna_sweeper) and its experiments."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from hydra.core.utils import JobStatus
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.robustlab_optuna_sweeper._search_space import build_space
from hydra_plugins.robustlab_optuna_sweeper._study import (
    FRONT_FILE,
    launch,
    open_study,
    tell,
    tell_duplicate,
)
from tests.app_helpers import run_console

optuna.logging.set_verbosity(optuna.logging.WARNING)
CONF = Path(__file__).resolve().parents[1] / "conf"
SETTINGS = {
    "objectives": ["clean_accuracy", "robust_accuracy/worst_case@0.1"],
    "directions": ["maximize", "maximize"],
    "flag_key": "masking_suspected",
}


def _sweeper(experiment: str) -> dict:
    return yaml.safe_load((CONF / "experiment" / f"{experiment}.yaml").read_text())["hydra"][
        "sweeper"
    ]


def test_sweep_grammar_maps_to_optuna_distributions_and_the_command_line_wins() -> None:
    params = {
        "a": "interval(0.05, 0.2)",
        "b": "tag(log, interval(0.01, 0.3))",
        "c": "range(1, 11)",
        "d": "choice(x, y)",
        "e": "interval(0, 1)",
    }
    space = build_space(params, {}, ["e=0.5", "f=1,2"])
    assert space.searched["a"] == FloatDistribution(0.05, 0.2)
    assert space.searched["b"] == FloatDistribution(0.01, 0.3, log=True)
    assert space.searched["c"] == IntDistribution(1, 10)  # range's stop is exclusive
    assert space.searched["d"] == CategoricalDistribution(["x", "y"])
    assert space.searched["f"] == CategoricalDistribution(["1", "2"])
    assert "e" not in space.searched and space.fixed["e"] == "0.5"


def test_a_defense_knob_is_searched_only_in_the_trials_of_that_defense() -> None:
    sweeper = _sweeper("pareto_at")
    space = build_space(sweeper["params"], sweeper["conditional"], [])
    study = optuna.create_study(
        directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    seen = set()
    for _ in range(12):
        overrides = dict(o.split("=", 1) for o in space.suggest(study.ask()))
        seen.add(overrides["defense"])
        own = {"pgd_at": "defense.steps", "fast_at": "defense.step_size"}
        assert own[overrides["defense"]] in overrides
        other = own["fast_at" if overrides["defense"] == "pgd_at" else "pgd_at"]
        assert other not in overrides
        assert 0.05 <= float(overrides["defense.eps"]) <= 0.2
    assert seen == {"pgd_at", "fast_at"}
    # the command line pins the branch: PGD-AT alone, its steps fixed
    pinned = build_space(sweeper["params"], sweeper["conditional"], ["defense=pgd_at"])
    assert "defense=pgd_at" in pinned.suggest(study.ask())


def _job(value, status=JobStatus.COMPLETED):
    return SimpleNamespace(status=status, return_value=value)


def test_flagged_and_failed_trials_never_reach_the_front(tmp_path: Path) -> None:
    settings = {**SETTINGS, "study_name": "s", "storage": str(tmp_path / "journal.log")}
    study = open_study(settings)
    good = {"clean_accuracy": 0.9, "robust_accuracy/worst_case@0.1": 0.5, "masking_suspected": 0}
    masked = {**good, "robust_accuracy/worst_case@0.1": 0.99, "masking_suspected": 1}
    for value in (good, masked, None, {"clean_accuracy": 0.95}):
        tell(study, study.ask(), _job(value), settings)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL]
    assert [t.number for t in study.best_trials] == [0]
    assert study.trials[1].user_attrs["flagged"] == "masking_suspected"
    assert "did not return robust_accuracy/worst_case@0.1" in study.trials[3].user_attrs["failure"]


def test_a_trial_that_repeats_a_finished_one_reuses_its_result(tmp_path: Path) -> None:
    settings = {**SETTINGS, "study_name": "s", "storage": str(tmp_path / "journal.log")}
    study = open_study(settings)
    first = study.ask()
    first.suggest_float("beta", 0.1, 10.0)
    assert not tell_duplicate(study, first)
    tell(
        study, first, _job({"clean_accuracy": 0.9, "robust_accuracy/worst_case@0.1": 0.5}), settings
    )
    study.enqueue_trial(first.params)  # what a genetic sampler does when it breeds a parent again
    repeat = study.ask()
    repeat.suggest_float("beta", 0.1, 10.0)
    assert tell_duplicate(study, repeat)
    told = study.trials[repeat.number]
    assert told.state == TrialState.COMPLETE and told.values == [0.9, 0.5]
    assert told.user_attrs["duplicate_of"] == first.number
    fresh = study.ask()
    fresh.suggest_float("beta", 0.1, 10.0)
    assert not tell_duplicate(study, fresh)


def test_jobs_are_numbered_by_trial_even_when_another_worker_took_numbers() -> None:
    calls = []

    class Launcher:
        def launch(self, batch, initial_job_idx):
            calls.append((initial_job_idx, len(batch)))
            return [None] * len(batch)

    trials = [SimpleNamespace(number=n) for n in (4, 5, 8)]
    assert len(launch(Launcher(), trials, [["a=1"]] * 3)) == 3
    assert calls == [(4, 2), (8, 1)]


TINY = [
    "experiment=pareto_trades",
    "train.epochs=1",
    "data.max_train=128",
    "eval.max_examples=16",
    # the fast suite's APGD/Square schedule costs minutes on two CPU cores: the configured
    # attacks' worst case is the objective here
    "eval.suite=none",
    "eval.eps=[0.1]",
    "eval.attacks.pgd.steps=1",
    "eval.attacks.pgd_margin.steps=1",
    "defense.steps=1",
    "logger=none",
]


def _trials(sweep: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(
        study_name="pareto_trades",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(sweep / "optuna_journal.log"))
        ),
    ).trials


@pytest.mark.slow
def test_a_rerun_continues_the_study_on_disk(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [*TINY, f"hydra.sweep.dir={sweep}"]
    first = run_console(
        "robustlab-train", *args, "hydra.sweeper.n_trials=2", cwd=tmp_path, timeout=600
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert (sweep / "optuna_journal.log").is_file()
    before = _trials(sweep)
    assert [t.state for t in before] == [TrialState.COMPLETE] * 2
    front = yaml.safe_load((sweep / FRONT_FILE).read_text())
    assert front["trials"] == {"complete": 2} and front["front"]
    again = run_console(
        "robustlab-train", *args, "hydra.sweeper.n_trials=1", cwd=tmp_path, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    after = _trials(sweep)
    assert len(after) == 3 and [t.number for t in after] == [0, 1, 2]
    # finished trials are kept as they were, and the new one is a new point
    assert [t.values for t in after[:2]] == [t.values for t in before]
    assert after[2].params not in [t.params for t in before]
    assert sorted(p.name.split("_")[0] for p in sweep.glob("*_resnet20_trades_s0")) == [
        "0",
        "1",
        "2",
    ]
    summary = (sweep / "report" / "summary.md").read_text()
    assert "## Pareto front (clean vs worst_case @ eps 0.1)" in summary
    assert (sweep / "report" / "pareto_front.png").is_file()
