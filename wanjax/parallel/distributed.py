"""Several processes, one job: start-up from the environment, host copies of global arrays, agreed preemption.

    initialize_args(os.environ)   # {"coordinator_address": "127.0.0.1:4321", "num_processes": 2, "process_id": 0}
    ema = to_host(state.ema)      # numpy on every process (a collective: every process calls it)

A process learns its place in the job from JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES
and JAX_PROCESS_ID (what `wanjax launch` sets), plus JAX_NUM_CPU_DEVICES for CPU runs; on a TPU pod slice or
under SLURM, JAX detects all of it itself. jax 0.10.2 reads no process count or id from the environment, so
wanjax reads them and passes them to `jax.distributed.initialize`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
from jax.experimental import multihost_utils

from wanjax.errors import WanjaxError

EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


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


def check_rows_per_process(sharding: jax.sharding.Sharding, local_shape: tuple[int, ...]) -> None:
    """Raise unless the batch rows are split over the processes (the input pipeline reads a different 1/P of each
    batch in each process): a mesh that replicates rows over processes would silently mix their data.
    local_shape: [B_local, ...] of one batch entry that `sharding` places."""
    processes = jax.process_count()
    if processes == 1:
        return
    local_rows, total = local_shape[0], local_shape[0] * processes
    rows = [set() for _ in range(processes)]
    for device, index in sharding.devices_indices_map((total, *local_shape[1:])).items():
        rows[device.process_index] |= set(range(total)[index[0]])
    if any(len(r) != local_rows for r in rows) or len(set().union(*rows)) != total:
        raise WanjaxError(
            f"the mesh gives processes overlapping batch rows (each of the {processes} processes reads its own "
            f"{local_rows}); make mesh.data×mesh.fsdp a multiple of the process count and put ring/tensor inside a host"
        )


def agreed_preemption(step: int) -> bool:
    """Whether every process has agreed to save at `step` and stop (JAX's preemption sync manager, which
    `jax.distributed.initialize` starts and which hears SIGTERM). Call it at every step, on every process."""
    return bool(multihost_utils.reached_preemption_sync_point(step))
