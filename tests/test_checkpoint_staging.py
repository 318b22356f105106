"""A checkpoint directory is replaced whole or not at all: staging, publishing, recovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from robustlab import fileio
from robustlab.fileio import recover_directory, replace_directory, replaced_aside
from robustlab.training import finished_weights, save_weights
from robustlab.training.staging import (
    discard_staging,
    prepare_staging,
    publish,
    staging_directory,
)


def _checkpoint(directory: Path, value: float) -> Path:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(value)
    save_weights(directory, model, {"value": value})
    return directory


def _value(directory: Path) -> float:
    from safetensors.torch import load_file

    return float(load_file(directory / "model.safetensors")["weight"][0, 0])


def _entries(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


@pytest.mark.parametrize("swap", [True, False], ids=["atomic-swap", "two-renames"])
def test_replace_directory_puts_the_new_one_in_place_and_drops_the_old(tmp_path, monkeypatch, swap):
    if not swap:  # Windows and some network file systems: no atomic swap
        monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    target = _checkpoint(tmp_path / "model", 1.0)
    replace_directory(_checkpoint(tmp_path / "new", 2.0), target)
    assert _value(target) == 2.0
    assert _entries(tmp_path) == ["model"]
    replace_directory(_checkpoint(tmp_path / "newer", 3.0), tmp_path / "other")  # a new name
    assert _value(tmp_path / "other") == 3.0


def test_the_swap_is_atomic_where_the_system_has_one(tmp_path):
    first, second = _checkpoint(tmp_path / "a", 1.0), _checkpoint(tmp_path / "b", 2.0)
    if not fileio._exchange(first, second):
        pytest.skip("no atomic directory swap on this system")
    assert (_value(first), _value(second)) == (2.0, 1.0)


def test_a_kill_between_the_two_renames_is_recovered(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    target = _checkpoint(tmp_path / "model", 1.0)
    new = _checkpoint(tmp_path / "new", 2.0)
    renames, rename = [], os.rename

    def dies_on_the_second(source, destination):
        renames.append(source)
        if len(renames) == 2:
            raise KeyboardInterrupt  # the process dies here
        rename(source, destination)

    monkeypatch.setattr(fileio.os, "rename", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        replace_directory(new, target)
    monkeypatch.undo()
    assert not target.exists() and replaced_aside(target).exists()
    prepare_staging(target, fresh=True)  # what the next run does first, under the lock
    assert _value(target) == 1.0
    assert _entries(tmp_path) == ["model", "new"]


def test_recovery_after_the_new_directory_arrived_drops_the_old(tmp_path):
    target = _checkpoint(tmp_path / "model", 2.0)
    _checkpoint(replaced_aside(target), 1.0)
    recover_directory(target)
    assert _value(target) == 2.0 and _entries(tmp_path) == ["model"]


def test_a_retrain_keeps_the_finished_checkpoint_until_it_publishes(tmp_path):
    directory = _checkpoint(tmp_path / "model", 1.0)
    staging = prepare_staging(directory, fresh=True)
    assert staging == staging_directory(directory) == tmp_path / "model.partial"
    (staging / "state").mkdir(parents=True)  # training, then killed: nothing published
    assert _value(directory) == 1.0
    # the next retrain starts from scratch; the finished checkpoint is still untouched
    assert not prepare_staging(directory, fresh=True).exists()
    assert _value(directory) == 1.0
    with pytest.raises(FileNotFoundError, match="no finished checkpoint"):
        publish(staging, directory)  # an unfinished run is never published
    _checkpoint(staging, 2.0)
    assert publish(staging, directory) == directory
    assert _value(directory) == 2.0 and _entries(tmp_path) == ["model"]


def test_a_partial_run_is_resumed_unless_fresh_and_dropped_on_reuse(tmp_path):
    directory = tmp_path / "model"
    staging = staging_directory(directory)
    (staging / "state").mkdir(parents=True)
    assert prepare_staging(directory, fresh=False) == staging and staging.exists()
    discard_staging(directory)
    assert not staging.exists()


def test_a_run_interrupted_in_place_is_adopted_as_the_partial_run(tmp_path):
    # checkpoint directories written before staging existed trained in place
    directory = tmp_path / "model"
    (directory / "state").mkdir(parents=True)
    (directory / "state" / "last.json").write_text("{}")
    staging = prepare_staging(directory, fresh=False)
    assert (staging / "state" / "last.json").exists() and not directory.exists()
    assert finished_weights(staging) is None
