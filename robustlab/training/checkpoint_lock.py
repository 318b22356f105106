"""One training per checkpoint directory: a file lock that jobs of a sweep take before training.

Two jobs with the same training identity (a joblib sweep over evaluation settings, say) would
otherwise both train into the same directory. The lock is an OS lock (``filelock``: ``flock``
on POSIX, ``LockFileEx`` on Windows), which the operating system releases when its process
dies, SIGKILL included, so a lock left by a killed job never blocks the next one. It lives
beside the directory, not in it, because retraining may delete the directory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from robustlab.distributed import broadcast_object, is_main_process

log = logging.getLogger(__name__)

POLL_SECONDS = 30.0


def lock_path(directory: str | Path) -> Path:
    """The lock file of a checkpoint directory: ``<directory>.lock`` beside it."""
    directory = Path(directory)
    return directory.with_name(directory.name + ".lock")


def _try_acquire(lock: FileLock, seconds: float) -> bool:
    try:
        lock.acquire(timeout=seconds)
    except Timeout:
        return False
    return True


@contextmanager
def checkpoint_lock(directory: str | Path, poll_seconds: float = POLL_SECONDS) -> Iterator[bool]:
    """Hold the lock of checkpoint ``directory`` for the block; yields whether another job held
    it first (its checkpoint may then be finished and worth reusing).

    Under DDP, rank 0 takes the lock for its whole group and the other ranks wait with it: a
    broadcast after every ``poll_seconds`` of waiting keeps their collectives within timeout.
    """
    path = lock_path(directory)
    lock = None
    if is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path)
    waited = False
    while True:
        acquired = lock is not None and _try_acquire(lock, poll_seconds if waited else 0)
        if broadcast_object(acquired):  # rank 0's answer, on every rank
            break
        if not waited:
            log.info("waiting for another job that trains into %s (lock %s)", directory, path)
        waited = True
    try:
        yield waited
    finally:
        if lock is not None:
            lock.release()
