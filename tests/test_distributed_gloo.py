"""gather/shard/broadcast on a real two-process gloo group (CPU)."""

import os
import socket

import torch
import torch.multiprocessing as mp

from robustlab import distributed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, size: int, port: int, queue) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    env = distributed.init_distributed(torch.device("cpu"))
    assert distributed.init_distributed(torch.device("cpu")) == env  # idempotent
    n = 7
    shard = distributed.shard_range(n)
    rows = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2)[shard.start : shard.stop]
    flags = (torch.arange(n) % 3 == 0)[shard.start : shard.stop]
    empty = torch.zeros((0 if rank else 2, 3))  # a rank may hold no rows at all
    result = {
        "rank": distributed.rank(),
        "size": distributed.world_size(),
        "main": distributed.is_main_process(),
        "shard": shard,
        "rows": distributed.gather_rows(rows),
        "flags": distributed.gather_rows(flags),
        "empty": distributed.gather_rows(empty).shape,
        "objects": distributed.gather_objects({"r": rank}),
        "broadcast": distributed.broadcast_object(f"from {rank}", src=1),
    }
    distributed.barrier()
    distributed.shutdown_distributed()
    result["after"] = (distributed.rank(), distributed.world_size())
    # tensors through a queue share memory with a process that is about to exit: send values
    result["flags_dtype"] = str(result["flags"].dtype)
    result.update(rows=result["rows"].tolist(), flags=result["flags"].tolist())
    queue.put(result)


def test_two_process_gloo_gather_and_shard():
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    procs = [context.Process(target=_worker, args=(r, 2, port, queue)) for r in range(2)]
    for proc in procs:
        proc.start()
    results = sorted((queue.get(timeout=120) for _ in procs), key=lambda r: r["rank"])
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    expected = torch.arange(14, dtype=torch.float32).reshape(7, 2).tolist()
    assert [r["shard"] for r in results] == [range(0, 4), range(4, 7)]
    assert [(r["size"], r["main"]) for r in results] == [(2, True), (2, False)]
    for result in results:
        assert result["rows"] == expected
        assert result["flags"] == (torch.arange(7) % 3 == 0).tolist()
        assert result["flags_dtype"] == "torch.bool"
        assert result["empty"] == (2, 3)
        assert result["objects"] == [{"r": 0}, {"r": 1}]
        assert result["broadcast"] == "from 1"
        assert result["after"] == (0, 1)


def test_single_process_is_the_identity():
    rows = torch.randn(3, 2)
    assert distributed.gather_rows(rows) is rows
    assert distributed.gather_objects(5) == [5]
    assert distributed.broadcast_object("x") == "x"
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (
        0,
        1,
        True,
    )
    assert distributed.init_distributed(torch.device("cpu")) is None
    distributed.barrier()
