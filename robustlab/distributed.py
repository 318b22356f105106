"""Process groups from torchrun or SLURM, sharding and gathering: the only module that knows ranks.

Everything else asks ``is_main_process()`` (who writes) or calls ``shard_range`` /
``gather_rows`` / ``gather_objects``; all of them are the identity in a single process, so code
written for one process runs unchanged under ``torchrun --nproc-per-node=N``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from robustlab.errors import ConfigError

__all__ = [
    "ProcessGroupEnv",
    "barrier",
    "broadcast_object",
    "gather_objects",
    "gather_rows",
    "init_distributed",
    "is_main_process",
    "read_process_env",
    "rank",
    "shard_range",
    "shutdown_distributed",
    "world_size",
]

_TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_SLURM_PORT_BASE = 15000  # a derived port lands in [15000, 35000): above the usual services
_SLURM_PORT_SPAN = 20000


@dataclass(frozen=True)
class ProcessGroupEnv:
    """Where this process sits in its group, as torchrun or SLURM described it."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str  # "torchrun" or "slurm"


def _integer(environ: Mapping[str, str], key: str, minimum: int = 0) -> int:
    raw = environ[key]
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(
            f"environment variable {key}={raw!r} is not an integer >= {minimum}: "
            "fix the launcher's environment or unset it to run as one process"
        )
    return value


def _check_rank(env: ProcessGroupEnv, rank_key: str) -> ProcessGroupEnv:
    if env.rank >= env.world_size:
        raise ConfigError(
            f"{rank_key}={env.rank} is not below the world size {env.world_size}: "
            "the launcher's environment is inconsistent"
        )
    if not 0 < env.master_port < 65536:
        raise ConfigError(f"master port {env.master_port} is not in 1..65535: set MASTER_PORT")
    return env


def _from_torchrun(environ: Mapping[str, str]) -> ProcessGroupEnv | None:
    missing = [key for key in _TORCHRUN_KEYS if key not in environ]
    if missing:
        raise ConfigError(
            f"RANK/WORLD_SIZE are set but {', '.join(missing)} are not: start the job with "
            "torchrun (which sets all of them) or unset RANK and WORLD_SIZE"
        )
    size = _integer(environ, "WORLD_SIZE", minimum=1)
    if size == 1:
        return None
    env = ProcessGroupEnv(
        rank=_integer(environ, "RANK"),
        world_size=size,
        local_rank=_integer(environ, "LOCAL_RANK"),
        master_addr=environ["MASTER_ADDR"],
        master_port=_integer(environ, "MASTER_PORT", minimum=1),
        source="torchrun",
    )
    return _check_rank(env, "RANK")


def _expand_range(body: str, text: str) -> list[str]:
    values: list[str] = []
    for part in body.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if match is None or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise ConfigError(f"cannot read the SLURM node list {text!r} (range {part!r})")
        first, last = match.group(1), match.group(2) or match.group(1)
        values += [str(i).zfill(len(first)) for i in range(int(first), int(last) + 1)]
    return values


def _expand_host(pattern: str, text: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", pattern)
    if match is None:
        if "[" in pattern or "]" in pattern:
            raise ConfigError(f"cannot read the SLURM node list {text!r} (unbalanced brackets)")
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [
        head + value + rest
        for value in _expand_range(match.group(1), text)
        for rest in _expand_host(tail, text)
    ]


def _expand_nodelist(text: str) -> list[str]:
    """SLURM's compressed host list (``node[01-03,07],gpu5``) as host names, in order."""
    # commas inside brackets separate ranges, outside them hosts
    patterns = re.findall(r"(?:[^,\[\]]|\[[^\[\]]*\])+", text)
    if ",".join(patterns) != text.strip():
        raise ConfigError(f"cannot read the SLURM node list {text!r} (unbalanced brackets)")
    hosts: list[str] = []
    for pattern in patterns:
        hosts += _expand_host(pattern.strip(), text)
    if not hosts:
        raise ConfigError(f"the SLURM node list {text!r} names no host")
    return hosts


def _from_slurm(environ: Mapping[str, str]) -> ProcessGroupEnv | None:
    # a step launched by srun knows its own task count; the batch script only the job's
    tasks_key = "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in environ else "SLURM_NTASKS"
    if tasks_key not in environ or "SLURM_PROCID" not in environ:
        return None
    size = _integer(environ, tasks_key, minimum=1)
    if size == 1:
        return None
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
    if not nodelist and "MASTER_ADDR" not in environ:
        raise ConfigError(
            "SLURM runs several tasks but sets no SLURM_JOB_NODELIST: set MASTER_ADDR"
        )
    if "MASTER_PORT" in environ:
        port = _integer(environ, "MASTER_PORT", minimum=1)
    elif "SLURM_JOB_ID" in environ:
        port = _SLURM_PORT_BASE + _integer(environ, "SLURM_JOB_ID") % _SLURM_PORT_SPAN
    else:
        raise ConfigError("SLURM runs several tasks but sets no SLURM_JOB_ID: set MASTER_PORT")
    env = ProcessGroupEnv(
        rank=_integer(environ, "SLURM_PROCID"),
        world_size=size,
        local_rank=_integer(environ, "SLURM_LOCALID") if "SLURM_LOCALID" in environ else 0,
        master_addr=environ.get("MASTER_ADDR") or _expand_nodelist(nodelist or "")[0],
        master_port=port,
        source="slurm",
    )
    return _check_rank(env, "SLURM_PROCID")


def read_process_env(environ: Mapping[str, str] | None = None) -> ProcessGroupEnv | None:
    """This process's place in a process group, or None when it runs alone.

    torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) come first;
    otherwise SLURM's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, the first host of the node
    list as master, MASTER_PORT or a port derived from SLURM_JOB_ID) when it runs several tasks.
    A bad value raises ``ConfigError`` with one line.
    """
    environ = os.environ if environ is None else environ
    if "RANK" in environ or "WORLD_SIZE" in environ:
        return _from_torchrun(environ)
    return _from_slurm(environ)


_ENV: ProcessGroupEnv | None = None


def init_distributed(device: torch.device) -> ProcessGroupEnv | None:
    """Join the process group the environment describes (nccl on CUDA, gloo on the CPU).

    Returns None (and does nothing) for a single process; a second call returns the same env.
    On CUDA the current device becomes ``cuda:local_rank``.
    """
    global _ENV
    if dist.is_available() and dist.is_initialized():
        return _ENV
    env = read_process_env()
    if env is None:
        return None
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed: run as one process")
    # init_method env:// reads these; SLURM does not set them, torchrun does
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = env.master_addr, str(env.master_port)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(
        backend, rank=env.rank, world_size=env.world_size, timeout=timedelta(minutes=30)
    )
    _ENV = env
    return env


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def _current_rank() -> int:
    return dist.get_rank() if _active() else 0


def _current_world_size() -> int:
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    """This process's rank; 0 when no process group is set up."""
    return _current_rank()


def world_size() -> int:
    """The number of processes in the group; 1 when no process group is set up."""
    return _current_world_size()


def is_main_process() -> bool:
    """Whether this process writes files, logs and results (rank 0, or the only process)."""
    return rank() == 0


def shard_range(n: int, rank: int | None = None, world_size: int | None = None) -> range:
    """This rank's contiguous share of ``range(n)``; the first ``n % world_size`` get one more."""
    rank = _current_rank() if rank is None else rank
    size = _current_world_size() if world_size is None else world_size
    if size < 1 or not 0 <= rank < size or n < 0:
        raise ConfigError(
            f"shard_range needs n >= 0 and 0 <= rank < world_size, got {n, rank, size}"
        )
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order, on every rank (row counts may differ)."""
    if not _active():
        return tensor
    size = dist.get_world_size()
    counts = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([tensor.shape[0]], device=tensor.device))
    rows = [int(c.item()) for c in counts]
    # gloo has no bool collectives; uint8 carries the same values
    wire = tensor.to(torch.uint8) if tensor.dtype == torch.bool else tensor
    padded = wire.new_zeros((max(rows), *wire.shape[1:]))
    padded[: wire.shape[0]] = wire
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded.contiguous())
    joined = torch.cat([part[:count] for part, count in zip(parts, rows, strict=True)])
    return joined.to(torch.bool) if tensor.dtype == torch.bool else joined


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order, on every rank (``[obj]`` when alone)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself when alone)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait until every rank gets here (nothing when alone)."""
    if _active():
        dist.barrier()


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one."""
    global _ENV
    if _active():
        dist.destroy_process_group()
    _ENV = None
