"""The device mesh ('data', 'fsdp', 'ring', 'tensor') and the logical-axis rules that map names onto it.

    mesh = make_mesh(cfg.mesh)                      # ICI sizes within a slice, DCN sizes across slices
    spec = logical_to_spec(("batch", "tokens", "act_embed"))   # PartitionSpec(('data', 'fsdp'), 'ring', None)

Axes go from least to most communication-hungry (the order `create_device_mesh` expects), so `tensor`
lands on the fastest ICI links and `data` spans the DCN when a job covers several slices.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, PartitionSpec

from wanjax.config import MeshConfig
from wanjax.errors import WanjaxError
from wanjax.parallel.distributed import cpu_devices, initialize_args, use_cpu_devices

AXES = ("data", "fsdp", "ring", "tensor")

# Logical name -> mesh axes (flax's rules format, so it also feeds `nnx.with_partitioning` and friends).
RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),  # examples B: pure data parallel, and the FSDP groups' share of the batch
    ("tokens", "ring"),  # video tokens L, time-major: each ring shard holds whole latent frames
    ("frames", "ring"),  # per-frame values [B, F] (timesteps), split like the tokens they belong to
    ("act_embed", None),  # model dim D of activations: replicated (batch already uses fsdp)
    ("embed", "fsdp"),  # model dim D of weights: FSDP shards params, gathered one layer at a time
    ("heads", "tensor"),  # attention heads N (Megatron-style tensor parallel)
    ("kv", None),  # head dim K
    ("mlp", "tensor"),  # FFN hidden dim
    ("layers", None),  # the scanned block axis
    ("text", None),  # text tokens M (short; replicated)
)


def logical_to_spec(names: Sequence[str | None], rules: Sequence[tuple[str, Any]] = RULES) -> PartitionSpec:
    """PartitionSpec for an array whose dims carry these logical names (None = replicated dim)."""
    table = dict(rules)
    spec, used = [], set()
    for name in names:
        if name is not None and name not in table:
            raise WanjaxError(f"logical axis {name!r} has no sharding rule; known: {', '.join(table)}")
        axes = None if name is None else table[name]
        for axis in (axes,) if isinstance(axes, str) else axes or ():
            if axis in used:
                raise WanjaxError(f"logical axes {tuple(names)} map mesh axis {axis!r} twice")
            used.add(axis)
        spec.append(axes)
    return PartitionSpec(*spec)


def check_divisible(what: str, size: int, mesh: Mesh, axes: str | Sequence[str] | None) -> None:
    """Raise if `size` (e.g. the head count) cannot be split evenly over these mesh axes."""
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    shards = math.prod(mesh.shape[a] for a in axes)
    if size % shards:
        raise WanjaxError(
            f"{what}={size} is not divisible by the mesh axes {'×'.join(axes)} = {shards}; "
            f"use a size dividing {size} for {'/'.join(axes)} (divisors: {_divisors(size)})"
        )


def mesh_shape(cfg: MeshConfig, num_devices: int, num_slices: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Resolve -1 sizes: (ICI sizes per slice, DCN sizes across slices), each ordered like AXES."""
    dcn = _fill("dcn_", [getattr(cfg, f"dcn_{a}") for a in AXES], num_slices, num_devices)
    per_slice = num_devices // math.prod(dcn) if num_devices % math.prod(dcn) == 0 else num_devices
    ici = _fill("", [getattr(cfg, a) for a in AXES], per_slice, num_devices)
    total = math.prod(ici) * math.prod(dcn)
    if total != num_devices:
        sizes = " ".join(f"{a}={i}" + (f"×dcn {d}" if d != 1 else "") for a, i, d in zip(AXES, ici, dcn, strict=True))
        raise WanjaxError(
            f"mesh {sizes} needs {total} devices, but there are {num_devices}; "
            f"change the sizes or set one of them to -1 to fill"
        )
    return ici, dcn


def device_grid(cfg: MeshConfig, devices: Sequence[Any]) -> np.ndarray:
    """Devices arranged as an array of shape ICI × DCN sizes, following the physical topology."""
    # A granule is one ICI island: a TPU slice, or one process where the devices are not in several slices (GPU and
    # CPU hosts, whose devices carry slice index 0 or none).
    attr = "slice_index" if len({getattr(d, "slice_index", 0) for d in devices}) > 1 else "process_index"
    granules = len({getattr(d, attr) for d in devices})
    ici, dcn = mesh_shape(cfg, len(devices), granules)
    if math.prod(dcn) == 1:
        return mesh_utils.create_device_mesh(ici, devices)
    if math.prod(dcn) != granules:
        raise WanjaxError(
            f"mesh.dcn_* sizes {dict(zip(AXES, dcn, strict=True))} multiply to {math.prod(dcn)}, but the devices form "
            f"{granules} {'slices' if attr == 'slice_index' else 'processes'}; the DCN sizes must multiply to that"
        )
    return mesh_utils.create_hybrid_device_mesh(ici, dcn, devices, process_is_granule=attr == "process_index")


def make_mesh(cfg: MeshConfig, devices: Sequence[Any] | None = None) -> Mesh:
    """The 4-axis mesh for `cfg` over `devices` (default: all devices of all processes)."""
    return Mesh(device_grid(cfg, jax.devices() if devices is None else list(devices)), AXES)


def process_count_hint(env: Mapping[str, str] = os.environ) -> int:
    """How many processes the launcher started, read from its environment (1 when none says more)."""
    hints = [
        env.get("JAX_NUM_PROCESSES"),
        env.get("SLURM_NTASKS"),
        env.get("OMPI_COMM_WORLD_SIZE"),
        env.get("MEGASCALE_NUM_SLICES"),
        # One entry per TPU VM host of the slice; a single-host TPU lists one.
        str(len(env["TPU_WORKER_HOSTNAMES"].split(","))) if env.get("TPU_WORKER_HOSTNAMES") else None,
    ]
    return max((int(h) for h in hints if h and h.strip().isdigit()), default=1)


def maybe_initialize_distributed(env: Mapping[str, str] = os.environ) -> bool:
    """`jax.distributed.initialize` when this process is one of several; a no-op on one host.

    Explicit JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID (`wanjax launch`) are passed on; else a
    TPU pod slice, SLURM or Open MPI is auto-detected. JAX_NUM_CPU_DEVICES sets this process's CPU devices. Call it
    first thing, before anything touches a JAX backend. Returns whether it initialized.
    """
    if jax.distributed.is_initialized():
        return False
    args, cpus = initialize_args(env), cpu_devices(env)
    if cpus is not None:
        use_cpu_devices(cpus)
    if args is None and (process_count_hint(env) <= 1 or "JAX_NUM_PROCESSES" in env):
        return False
    jax.distributed.initialize(**(args or {}))  # no args: cluster auto-detection (Cloud TPU, SLURM, Open MPI)
    return True


def _fill(prefix: str, sizes: list[int], target: int, num_devices: int) -> tuple[int, ...]:
    """Replace the one -1 in `sizes` by target / product(others)."""
    names = [f"mesh.{prefix}{a}" for a in AXES]
    free = [n for n, s in zip(names, sizes, strict=True) if s == -1]
    if len(free) > 1:
        raise WanjaxError(f"{' and '.join(free)} are both -1; at most one {prefix or 'ICI '}size may fill")
    for n, s in zip(names, sizes, strict=True):
        if s == 0 or s < -1:
            raise WanjaxError(f"{n}={s}: mesh sizes are positive, or -1 to fill")
    known = math.prod(s for s in sizes if s != -1)
    if free:
        if target % known:
            raise WanjaxError(
                f"{free[0]}=-1 cannot fill: the other {prefix or 'ICI '}sizes multiply to {known}, "
                f"which does not divide {target} (of {num_devices} devices)"
            )
        sizes = [target // known if s == -1 else s for s in sizes]
    return tuple(sizes)


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)
