"""Command lines of the ranks other than 0 under torchrun/SLURM: they compute, rank 0 writes.

Every rank runs the same Hydra app on the same overrides. A rank other than 0 gets its Hydra
output directory in a temporary folder (removed when it exits), so the job's directory holds
rank 0's files only; it logs warnings only, draws no progress bars and opens no W&B run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

from robustlab.distributed import read_process_env
from robustlab.errors import ConfigError

# overrides a worker rank replaces with its own
_REPLACED = ("hydra.run.dir=", "hydra.sweep.dir=", "logger.mode=", "hydra.job_logging.root.level=")


def worker_argv(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """``argv`` for this process: unchanged for rank 0 or a single process; for another rank,
    the overrides that keep its output out of the job directory and its logging quiet."""
    try:
        env = read_process_env(environ)
    except ConfigError:  # the job's start-up reports it, as one line, from inside the job
        return list(argv)
    if env is None or env.rank == 0:
        return list(argv)
    os.environ["ROBUSTLAB_PROGRESS"] = "0"
    scratch = tempfile.mkdtemp(prefix=f"robustlab-rank{env.rank}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    kept = [arg for arg in argv if not arg.lstrip("+~").startswith(_REPLACED)]
    return kept + [
        f"hydra.run.dir={scratch}",
        f"hydra.sweep.dir={scratch}",
        "logger.mode=disabled",
        "hydra.job_logging.root.level=WARNING",
    ]
