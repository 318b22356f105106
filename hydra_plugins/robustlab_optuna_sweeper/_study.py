"""The study loop: ask a batch of trials, launch them as Hydra jobs, tell their objectives.

The study is stored on disk (a journal file or an SQL database in the sweep folder) and opened
with ``load_if_exists``, so a killed sweep, re-run with the same command, continues: finished
trials stay, ``n_trials`` new ones are added, and several workers (joblib processes, SLURM array
tasks, or several sweep commands) can share one study. Jobs are numbered by trial number, so
their folders never collide across runs or workers.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from optuna.trial import TrialState

from hydra_plugins.robustlab_optuna_sweeper._search_space import build_space

log = logging.getLogger(__name__)

FRONT_FILE = "optuna_front.yaml"


def open_storage(storage: str) -> optuna.storages.BaseStorage:
    """A URL (``sqlite:///study.db``) is an SQL storage; a plain path, Optuna's journal file."""
    if "://" in storage:
        path = storage.split(":///", 1)[1] if storage.startswith("sqlite:///") else None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(storage)
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(storage)
    return optuna.storages.JournalStorage(backend)


def open_study(settings: Mapping[str, Any]) -> optuna.Study:
    """Create the study, or load it when the storage already holds one of that name."""
    if len(settings["objectives"]) != len(settings["directions"]):
        raise ValueError(
            f"hydra.sweeper: {len(settings['objectives'])} objectives but "
            f"{len(settings['directions'])} directions; give one direction per objective"
        )
    study = optuna.create_study(
        study_name=settings["study_name"],
        storage=open_storage(str(settings["storage"])),
        directions=list(settings["directions"]),
        load_if_exists=True,
    )
    sampler = dict(settings.get("sampler") or {})
    if sampler:
        # a continued study must not draw the first run's points again: offset the seed by
        # the trials it already holds (still reproducible: same command, same study, same draws)
        if sampler.get("seed") is not None:
            sampler["seed"] = int(sampler["seed"]) + len(study.trials)
        study.sampler = instantiate(sampler)
    return study


def objective_values(value: Any, objectives: Sequence[str]) -> list[float] | str:
    """The objectives from a job's return value, or why the trial failed."""
    if not isinstance(value, Mapping):
        return "the job returned no results (it failed: see its results.json and log)"
    missing = [name for name in objectives if not _finite(value.get(name))]
    if missing:
        return f"the job did not return {', '.join(missing)} (returned: {sorted(value)})"
    return [float(value[name]) for name in objectives]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def tell(study: optuna.Study, trial: optuna.Trial, ret: JobReturn, settings: Mapping) -> None:
    """Tell one finished job: its objectives; pruned when flagged; failed with the reason."""
    objectives, flag = list(settings["objectives"]), settings.get("flag_key")
    value = ret.return_value if ret.status == JobStatus.COMPLETED else None
    values = objective_values(value, objectives)
    if isinstance(values, str):
        trial.set_user_attr("failure", values)
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, values)
        return
    for name, number in zip(objectives, values, strict=True):
        trial.set_user_attr(name, number)
    if flag and value.get(flag):
        # a flagged result (e.g. gradient masking) may only say that the attacks failed
        trial.set_user_attr("flagged", flag)
        study.tell(trial, state=TrialState.PRUNED)
        log.warning("trial %d flagged by %s: kept off the Pareto front", trial.number, flag)
        return
    study.tell(trial, values)


def tell_duplicate(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Tell a trial whose knobs a finished trial already had that trial's outcome, so the same
    job is not run twice (a genetic sampler can breed a parent again); False if it is new."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    same = next((t for t in done if t.number != trial.number and t.params == trial.params), None)
    if same is None:
        return False
    for key, value in {**same.user_attrs, "duplicate_of": same.number}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, same.values if same.state == TrialState.COMPLETE else None, state=same.state)
    log.info("trial %d repeats trial %d: its result is reused", trial.number, same.number)
    return True


def launch(launcher: Any, trials: Sequence[optuna.Trial], overrides: Sequence[list[str]]) -> list:
    """Launch jobs numbered by trial number; trial numbers another worker took in between
    split the batch, so each launch call gets consecutive job numbers."""
    returns: list[JobReturn] = []
    start = 0
    for end in range(1, len(trials) + 1):
        if end == len(trials) or trials[end].number != trials[end - 1].number + 1:
            batch = [tuple(o) for o in overrides[start:end]]
            returns += launcher.launch(batch, initial_job_idx=trials[start].number)
            start = end
    return returns


def run_study(settings: Mapping[str, Any], arguments: Sequence[str], launcher, sweep_dir: str):
    """Add ``n_trials`` trials to the study, ``n_jobs`` at a time, then write its front."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    study = open_study(settings)
    space = build_space(settings["params"], settings.get("conditional") or {}, arguments)
    before = len(study.trials)
    log.info("study %r: %d trial(s) so far in %s", study.study_name, before, settings["storage"])
    remaining, n_jobs = int(settings["n_trials"]), max(1, int(settings["n_jobs"]))
    while remaining > 0:
        asked = [study.ask() for _ in range(min(n_jobs, remaining))]
        overrides = {trial.number: space.suggest(trial) for trial in asked}
        trials = [trial for trial in asked if not tell_duplicate(study, trial)]
        batch = [overrides[trial.number] for trial in trials]
        for trial, ret in zip(trials, launch(launcher, trials, batch), strict=True):
            tell(study, trial, ret, settings)
        remaining -= len(asked)
    write_front(study, Path(sweep_dir) / FRONT_FILE, settings)


def _front_trials(study: optuna.Study) -> list:
    try:
        return study.best_trials
    except ValueError:  # a single-objective study with no finished trial yet
        return []


def write_front(study: optuna.Study, path: Path, settings: Mapping[str, Any]) -> None:
    """The study's Pareto front (trial numbers, params, objectives) as YAML, atomically."""
    states = [t.state for t in study.trials]
    summary = {
        "study_name": study.study_name,
        "storage": str(settings["storage"]),
        "objectives": dict(zip(settings["objectives"], settings["directions"], strict=True)),
        "trials": {s.name.lower(): states.count(s) for s in TrialState if states.count(s)},
        "front": [
            {"trial": t.number, "values": list(t.values), "params": dict(t.params)}
            for t in sorted(_front_trials(study), key=lambda t: t.number)
        ],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(summary, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)
    log.info("Pareto front of %d trial(s): %s", len(summary["front"]), path)
