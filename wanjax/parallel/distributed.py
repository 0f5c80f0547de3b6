"""Several processes, one job: start-up from the environment, host copies of global arrays, agreed preemption.

    initialize_args(os.environ)   # {"coordinator_address": "127.0.0.1:4321", "num_processes": 2, "process_id": 0}
    ema = to_host(state.ema)      # numpy on every process (a collective: every process calls it)
    x = replicated(noise, mesh)   # the same host values on every process -> one global array over the mesh
    index, count = row_share(batch_sharding, rows)   # which rows of each global batch this process reads
    barrier("data built")         # every process waits here until all have arrived (minutes apart is fine)

A process learns its place in the job from JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES
and JAX_PROCESS_ID (what `wanjax launch` sets), plus JAX_NUM_CPU_DEVICES for CPU runs; on a TPU pod slice or
under SLURM, JAX detects all of it itself. jax 0.10.2 reads no process count or id from the environment, so
wanjax reads them and passes them to `jax.distributed.initialize`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import jax
from jax.experimental import multihost_utils
from orbax.checkpoint import multihost as ocp_multihost

from wanjax.errors import WanjaxError

EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
BARRIER_TIMEOUT_S = 3600
_barriers = itertools.count()  # every process passes the same barriers in the same order: the same numbers


def _int(env: Mapping[str, str], name: str, low: int, high: int | None = None) -> int:
    value = env[name].strip()
    if not value.isdigit() or int(value) < low or (high is not None and int(value) >= high):
        bound = f"an integer ≥ {low}" + (f" and < {high}" if high is not None else "")
        raise WanjaxError(f"{name}={env[name]!r} is not {bound}; fix or unset it")
    return int(value)


def initialize_args(env: Mapping[str, str]) -> dict | None:
    """`jax.distributed.initialize` arguments from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, or
    None when neither a process count nor an id is set (auto-detection's turn) or the job is one process."""
    if "JAX_NUM_PROCESSES" not in env and "JAX_PROCESS_ID" not in env:
        return None
    missing = [name for name in EXPLICIT if not env.get(name, "").strip()]
    if missing:
        raise WanjaxError(
            f"{' and '.join(missing)} not set, but {', '.join(n for n in EXPLICIT if n not in missing)} is: a process "
            f"of a multi-process job needs all of {', '.join(EXPLICIT)} (or use `wanjax launch`)"
        )
    num = _int(env, "JAX_NUM_PROCESSES", 1)
    pid = _int(env, "JAX_PROCESS_ID", 0, num)
    address = env["JAX_COORDINATOR_ADDRESS"].strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WanjaxError(f"JAX_COORDINATOR_ADDRESS={address!r} is not host:port (e.g. 10.0.0.2:1234, process 0's)")
    if num == 1:
        return None
    return {"coordinator_address": address, "num_processes": num, "process_id": pid}


def cpu_devices(env: Mapping[str, str]) -> int | None:
    """JAX_NUM_CPU_DEVICES (fake CPU devices in this process), or None when unset."""
    return _int(env, "JAX_NUM_CPU_DEVICES", 1) if env.get("JAX_NUM_CPU_DEVICES", "").strip() else None


def use_cpu_devices(n: int) -> None:
    """This process runs on `n` CPU devices. Before anything touches a backend (it overrides an inherited
    --xla_force_host_platform_device_count)."""
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX already started: fine if it has what was asked for
        if jax.default_backend() != "cpu" or jax.local_device_count() != n:
            raise WanjaxError(
                f"JAX_NUM_CPU_DEVICES={n}, but JAX already started with {jax.local_device_count()} "
                f"{jax.default_backend()} devices; set it before the process uses JAX"
            ) from None
        return
    jax.config.update("jax_platforms", "cpu")


def to_host(tree: Any) -> Any:
    """Global arrays -> numpy arrays with the global shapes, on every process. On several processes a collective
    (`process_allgather`): every process must call it, even one that then does nothing with the result."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def replicated(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Arrays (the same values in every process: seeded noise, the first frame) -> global arrays held whole by every
    device of `mesh`, which may span processes. None leaves stay None."""
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def row_share(sharding: jax.sharding.Sharding, rows: int) -> tuple[int, int]:
    """(index, count): this process's share of a global batch of `rows` rows that `sharding` places. Processes whose
    devices hold the same rows (a ring or tensor axis that spans hosts) form a group and read the same rows; the
    count groups hold equal, contiguous, disjoint blocks of rows, and index is this process's block."""
    held: dict[int, list[int]] = {}
    for device, index in sharding.devices_indices_map((rows,)).items():
        held.setdefault(device.process_index, []).extend(range(rows)[index[0]])
    spans = {p: (min(r), max(r) + 1) for p, r in held.items()}
    blocks = sorted(set(spans.values()))
    size = rows // len(blocks)
    whole = all(len(set(r)) == spans[p][1] - spans[p][0] for p, r in held.items())
    if not whole or blocks != [(i * size, (i + 1) * size) for i in range(len(blocks))]:
        raise WanjaxError(
            f"the mesh gives processes overlapping, uneven or scattered batch rows ({sorted(spans.items())}); put "
            "mesh.data×mesh.fsdp across processes in equal blocks, or ring/tensor inside a host or across all hosts"
        )
    return blocks.index(spans[jax.process_index()]), len(blocks)


def agreed_preemption(step: int) -> bool:
    """Whether every process has agreed to save at `step` and stop (JAX's preemption sync manager, which
    `jax.distributed.initialize` starts and which hears SIGTERM). Call it at every step, on every process."""
    return bool(multihost_utils.reached_preemption_sync_point(step))


def barrier(name: str, timeout_s: int = BARRIER_TIMEOUT_S) -> None:
    """Wait until every process of the job has reached this barrier; nothing on one process. The coordination
    service's barrier, not a device collective (`multihost_utils.sync_global_devices`): on CPU a process that waits
    in a collective (gloo) is killed after 30 s, and one host may build data or compile for minutes longer."""
    if jax.process_count() > 1:
        key = f"wanjax {next(_barriers)}: {name}"
        ocp_multihost.sync_global_processes(key, timeout=timeout_s, processes=set(range(jax.process_count())))
