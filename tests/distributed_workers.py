"""Run a function on N gloo processes (CPU) and collect what each rank returns."""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, size: int, port: int, task: Callable, args: tuple, queue) -> None:
    from robustlab import distributed

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    distributed.init_distributed(torch.device("cpu"))
    try:
        result = task(*args)
    except Exception:  # the test process reports it: a raise here would only hang the queue
        result = {"error": traceback.format_exc()}
    finally:
        distributed.shutdown_distributed()
    queue.put((rank, result))


def run_ranks(size: int, task: Callable[..., Any], *args: Any, timeout: float = 120) -> list:
    """``task(*args)`` on ``size`` processes of one gloo group; the results in rank order.

    ``task`` must be a module-level function; tensors in its result should be plain values
    (lists, floats) since the process that made them exits.
    """
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    procs = [
        context.Process(target=_worker, args=(r, size, port, task, args, queue))
        for r in range(size)
    ]
    for proc in procs:
        proc.start()
    try:
        results = dict(queue.get(timeout=timeout) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    errors = [r["error"] for r in results.values() if isinstance(r, dict) and "error" in r]
    assert not errors, errors[0]
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
    return [results[r] for r in range(size)]
