"""Process start-up from the environment: what `wanjax launch` (or a user) sets, parsed and checked in one place."""

from collections import namedtuple

import jax
import pytest

from wanjax.errors import WanjaxError
from wanjax.parallel.distributed import cpu_devices, initialize_args, row_share, use_cpu_devices
from wanjax.parallel.mesh import maybe_initialize_distributed

Device = namedtuple("Device", "id process_index")
JOB = {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:4321", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}


def test_explicit_variables_become_initialize_arguments():
    assert initialize_args(JOB) == {"coordinator_address": "127.0.0.1:4321", "num_processes": 2, "process_id": 1}
    assert initialize_args(JOB | {"JAX_COORDINATOR_ADDRESS": "[::1]:80"})["coordinator_address"] == "[::1]:80"


def test_no_count_or_id_leaves_it_to_auto_detection():
    assert initialize_args({}) is None
    assert initialize_args({"JAX_COORDINATOR_ADDRESS": "10.0.0.2:1234", "SLURM_NTASKS": "4"}) is None
    assert initialize_args(JOB | {"JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}) is None  # a job of one


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JAX_NUM_PROCESSES": "2"}, r"JAX_COORDINATOR_ADDRESS and JAX_PROCESS_ID not set, but JAX_NUM_PROCESSES is"),
        ({k: v for k, v in JOB.items() if k != "JAX_PROCESS_ID"}, r"^JAX_PROCESS_ID not set"),
        (JOB | {"JAX_PROCESS_ID": "2"}, r"JAX_PROCESS_ID='2' is not an integer ≥ 0 and < 2"),
        (JOB | {"JAX_NUM_PROCESSES": "two"}, r"JAX_NUM_PROCESSES='two' is not an integer ≥ 1"),
        (JOB | {"JAX_NUM_PROCESSES": "0"}, r"JAX_NUM_PROCESSES='0' is not an integer ≥ 1"),
        (JOB | {"JAX_COORDINATOR_ADDRESS": "127.0.0.1"}, r"JAX_COORDINATOR_ADDRESS='127.0.0.1' is not host:port"),
        (JOB | {"JAX_COORDINATOR_ADDRESS": "h:99999"}, r"is not host:port"),
    ],
)
def test_missing_or_inconsistent_variables_are_one_line_errors(env, message):
    with pytest.raises(WanjaxError, match=message) as e:
        initialize_args(env)
    assert "\n" not in str(e.value)


def test_cpu_devices():
    assert cpu_devices({}) is None
    assert cpu_devices({"JAX_NUM_CPU_DEVICES": "4"}) == 4
    with pytest.raises(WanjaxError, match="JAX_NUM_CPU_DEVICES='-1' is not an integer ≥ 1"):
        cpu_devices({"JAX_NUM_CPU_DEVICES": "-1"})
    use_cpu_devices(8)  # JAX already runs on 8 (conftest): nothing to change
    with pytest.raises(WanjaxError, match="JAX_NUM_CPU_DEVICES=4, but JAX already started with 8 cpu devices"):
        use_cpu_devices(4)


def test_one_process_job_does_not_initialize():
    assert maybe_initialize_distributed(JOB | {"JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}) is False
    assert maybe_initialize_distributed({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"}) is False
    assert not jax.distributed.is_initialized()
    with pytest.raises(WanjaxError, match="JAX_PROCESS_ID not set"):
        maybe_initialize_distributed({"JAX_NUM_PROCESSES": "2", "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"})


class _Sharding:
    """Rows of a [4] batch over 4 devices, 2 per process, as given (all that row_share reads)."""

    def __init__(self, rows_of_device: list[slice]):
        self.rows = rows_of_device

    def devices_indices_map(self, shape):
        return {Device(d, d // 2): (r,) for d, r in enumerate(self.rows)}


@pytest.mark.parametrize(
    "rows, share",
    [([slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 4)], [(0, 2), (1, 2)]),  # fsdp over both processes
     ([slice(0, 2), slice(0, 2), slice(2, 4), slice(2, 4)], [(0, 2), (1, 2)]),  # tensor inside a process
     ([slice(0, 2), slice(2, 4), slice(0, 2), slice(2, 4)], [(0, 1), (0, 1)]),  # a ring across both: same rows
     ([slice(0, 4)] * 4, [(0, 1), (0, 1)])],  # rows replicated everywhere
)  # fmt: skip
def test_row_share(monkeypatch, rows, share):
    for p in range(2):
        monkeypatch.setattr(jax, "process_index", lambda p=p: p)
        assert row_share(_Sharding(rows), 4) == share[p]


def test_scattered_rows_are_an_error(monkeypatch):
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    with pytest.raises(WanjaxError, match="overlapping, uneven or scattered batch rows"):
        row_share(_Sharding([slice(0, 1), slice(2, 3), slice(1, 2), slice(3, 4)]), 4)  # scattered
    with pytest.raises(WanjaxError, match="overlapping, uneven or scattered batch rows"):
        row_share(_Sharding([slice(0, 1), slice(0, 1), slice(1, 4), slice(1, 4)]), 4)  # uneven
