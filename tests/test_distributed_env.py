"""Process-group environment parsing: torchrun, SLURM (node lists included), one process, errors."""

import pytest

from robustlab.distributed import ProcessGroupEnv, read_process_env, shard_range
from robustlab.errors import ConfigError

TORCHRUN = {
    "RANK": "3",
    "WORLD_SIZE": "4",
    "LOCAL_RANK": "1",
    "MASTER_ADDR": "10.0.0.5",
    "MASTER_PORT": "29500",
}
SLURM = {
    "SLURM_PROCID": "5",
    "SLURM_NTASKS": "8",
    "SLURM_LOCALID": "1",
    "SLURM_JOB_NODELIST": "gpu[07-09,12],cpu3",
    "SLURM_JOB_ID": "123456",
}


def test_torchrun_variables():
    assert read_process_env(TORCHRUN) == ProcessGroupEnv(3, 4, 1, "10.0.0.5", 29500, "torchrun")


def test_torchrun_wins_over_slurm():
    assert read_process_env({**SLURM, **TORCHRUN}).source == "torchrun"


def test_one_process_is_none():
    assert read_process_env({}) is None
    assert read_process_env({**TORCHRUN, "RANK": "0", "WORLD_SIZE": "1"}) is None
    # a SLURM job of one task (e.g. one job of a submitit sweep) runs alone
    assert read_process_env({**SLURM, "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None
    # no SLURM_PROCID: the batch script of an allocation, not a task
    assert read_process_env({"SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "a1"}) is None


def test_slurm_variables_and_first_host_of_the_node_list():
    env = read_process_env(SLURM)
    assert (env.rank, env.world_size, env.local_rank, env.source) == (5, 8, 1, "slurm")
    assert env.master_addr == "gpu07"
    assert env.master_port == 15000 + 123456 % 20000


def test_slurm_step_values_win_and_master_port_overrides_the_derived_one():
    env = read_process_env(
        {**SLURM, "SLURM_STEP_NUM_TASKS": "6", "SLURM_STEP_NODELIST": "n9", "MASTER_PORT": "4242"}
    )
    assert (env.world_size, env.master_addr, env.master_port) == (6, "n9", 4242)


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [
        ("node[01-04,07]", "node01"),
        ("node7", "node7"),
        ("a1,b[2-3]", "a1"),
        ("rack[3-4]-n[009-010]", "rack3-n009"),
        ("x-[10-12].cluster", "x-10.cluster"),
    ],
)
def test_node_list_expansion(nodelist, first):
    assert read_process_env({**SLURM, "SLURM_JOB_NODELIST": nodelist}).master_addr == first


def test_node_list_expands_every_host_in_order():
    from robustlab import distributed

    hosts = distributed._expand_nodelist("node[01-03,07],gpu5,r[1-2]-c[8-9]")
    assert hosts == ["node01", "node02", "node03", "node07", "gpu5"] + [
        "r1-c8",
        "r1-c9",
        "r2-c8",
        "r2-c9",
    ]


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({**TORCHRUN, "RANK": "x"}, "RANK='x'"),
        ({**TORCHRUN, "WORLD_SIZE": "0"}, "WORLD_SIZE='0'"),
        ({**TORCHRUN, "RANK": "4"}, "RANK=4 is not below"),
        ({**TORCHRUN, "MASTER_PORT": "70000"}, "master port 70000"),
        ({"RANK": "0", "WORLD_SIZE": "2"}, "LOCAL_RANK, MASTER_ADDR, MASTER_PORT"),
        ({**SLURM, "SLURM_NTASKS": "-2"}, "SLURM_NTASKS='-2'"),
        ({**SLURM, "SLURM_JOB_NODELIST": "node[04-01]"}, "node list"),
        ({**SLURM, "SLURM_JOB_NODELIST": "node[01"}, "node list"),
        ({k: v for k, v in SLURM.items() if k != "SLURM_JOB_ID"}, "MASTER_PORT"),
    ],
)
def test_bad_values_are_one_clear_line(environ, words):
    with pytest.raises(ConfigError) as err:
        read_process_env(environ)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("n", "size"), [(0, 3), (7, 1), (10, 3), (11, 4), (2, 5)])
def test_shards_are_contiguous_balanced_and_cover_everything(n, size):
    shards = [shard_range(n, r, size) for r in range(size)]
    assert [i for shard in shards for i in shard] == list(range(n))
    lengths = [len(shard) for shard in shards]
    assert max(lengths) - min(lengths) <= 1
    assert lengths == sorted(lengths, reverse=True)


def test_shard_range_alone_is_everything():
    assert shard_range(5) == range(5)
