"""A checkpoint directory only ever holds a finished checkpoint: training happens beside it.

A run trains into ``<directory>.partial`` (its per-epoch resume point lives there) and, once the
final weights are written, `publish` swaps that directory in for ``<directory>`` in one atomic
step (`robustlab.fileio.replace_directory`). A retrain that fails, is interrupted or is
killed (SIGKILL included) therefore leaves the checkpoint it was replacing as it was, loadable
by ``robustlab.load_checkpoint`` and by earlier ``results.json`` files; the next run with the
same identity resumes the partial run, or (``fresh``: a retrain from scratch) discards it.
Every step runs under the directory's lock (`robustlab.training.checkpoint_lock`).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from robustlab.fileio import recover_directory, replace_directory
from robustlab.training.checkpoint import finished_weights

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"


def staging_directory(directory: str | Path) -> Path:
    """Where a run that will become ``directory`` trains: ``<directory>.partial`` beside it."""
    directory = Path(directory)
    return directory.with_name(directory.name + PARTIAL_SUFFIX)


def prepare_staging(directory: str | Path, *, fresh: bool) -> Path:
    """The staging directory of ``directory``, ready to train into.

    Args:
        directory: The checkpoint directory the run will replace or create.
        fresh: Discard an earlier partial run (a retrain from scratch) instead of resuming it.

    Returns:
        The staging directory (it may not exist yet: the first epoch creates it).
    """
    directory = Path(directory)
    staging = staging_directory(directory)
    recover_directory(directory)
    if fresh and staging.exists():
        log.info("discarding the partial run in %s", staging)
        shutil.rmtree(staging)
    unfinished = directory.is_dir() and finished_weights(directory) is None
    if unfinished and not staging.exists():
        # a run interrupted before checkpoints were staged trained in place: resume it here
        os.rename(directory, staging)
    return staging


def discard_staging(directory: str | Path) -> None:
    """Remove the partial run of ``directory``, if any (a finished checkpoint is reused)."""
    staging = staging_directory(directory)
    if staging.exists():
        log.info("removing %s: a finished checkpoint is reused instead", staging)
        shutil.rmtree(staging)


def publish(staging: str | Path, directory: str | Path) -> Path:
    """Make the finished run in ``staging`` the checkpoint ``directory``, atomically.

    The previous checkpoint, if any, stays in place until the new one replaces it whole.
    """
    staging, directory = Path(staging), Path(directory)
    if finished_weights(staging) is None:
        raise FileNotFoundError(f"{staging} holds no finished checkpoint: nothing to publish")
    replace_directory(staging, directory)
    return directory
