"""Ring attention vs dense attention: per-device memory and wall time (issue #4 acceptance).

Needs 8 devices; on a CPU host the caller sets XLA_FLAGS=--xla_force_host_platform_device_count=8 before
JAX is imported (scripts/bench.py does). For each sequence length N and mask it measures
  ring      N tokens over a ring of 8 devices (jitted forward: wall time and compiled memory)
  dense/8   N/8 tokens on one device, the per-device share ring attention should match (time and memory)
  dense     N tokens on one device: compiled memory only, executing it would need an [N, N] score matrix
Memory is `compiled.memory_analysis()` of the one-device program (per device under SPMD):
temp + argument + output bytes (generated code and aliasing are left out; nothing is donated here).
Acceptance: ring memory per device <= 1.3 × dense memory at N/8.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding

from wanjax.config import MeshConfig
from wanjax.model.attention import attention
from wanjax.parallel.mesh import logical_to_spec, make_mesh

RING = 8
HEADS, HEAD_DIM, FRAMES = 2, 64, 64
SIZES = (4096, 16384, 65536)
MASKS = ("full", "causal")
ACCEPT = 1.3
# Above this many tokens a ring forward takes tens of seconds on CPU: one timed run, no warm-up call
# (compilation is already done by lower().compile(), so the timed run includes no tracing or compiling).
SINGLE_RUN_TOKENS = 32768


def _memory(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def _time(compiled, args, runs: int) -> float:
    """Median seconds of `runs` calls (after one untimed call when runs > 1)."""
    if runs > 1:
        jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _qkv(n: int, sharding=None) -> list[jax.Array]:
    keys = jax.random.split(jax.random.key(0), 3)
    xs = [jax.random.normal(k, (1, n, HEADS, HEAD_DIM), jnp.float32) for k in keys]
    return [jax.device_put(x, sharding) for x in xs] if sharding is not None else xs


def _compile(fn, args) -> jax.stages.Compiled:
    return jax.jit(fn).lower(*args).compile()


def run(max_tokens: int = 65536) -> list[dict]:
    """One row per (tokens, mask) with times in seconds, memory in bytes and the acceptance ratio."""
    if jax.device_count() < RING:
        raise RuntimeError(f"the ring benchmark needs {RING} devices, got {jax.device_count()}")
    mesh = make_mesh(MeshConfig(data=1, fsdp=1, ring=RING, tensor=1), jax.devices()[:RING])
    sharded = NamedSharding(mesh, logical_to_spec(("batch", "tokens", "heads", "kv")))
    one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    rows = []
    for n in (s for s in SIZES if s <= max_tokens):
        tpf = n // FRAMES
        runs = 1 if n > SINGLE_RUN_TOKENS else 3
        for mask in MASKS:
            ring_fn = functools.partial(attention, tokens_per_frame=tpf, mask=mask, impl="ring", mesh=mesh)
            dense_fn = functools.partial(attention, tokens_per_frame=tpf, mask=mask)
            args = _qkv(n, sharded)
            ring = _compile(ring_fn, args)
            ring_time = _time(ring, args, runs)
            # Same frame size as the ring run: N/8 tokens are the 8 frames one ring device holds.
            small = _qkv(n // RING, one_device)
            dense_small = _compile(dense_fn, small)
            dense_small_time = _time(dense_small, small, 3)
            # Lowered from shapes alone: the N-token dense inputs are never allocated nor run.
            shape = jax.ShapeDtypeStruct((1, n, HEADS, HEAD_DIM), jnp.float32, sharding=one_device)
            dense_full = _compile(dense_fn, [shape] * 3)
            ring_mem, small_mem = _memory(ring), _memory(dense_small)
            rows.append(
                {
                    "tokens": n,
                    "mask": mask,
                    "ring_devices": RING,
                    "ring_time_s": ring_time,
                    "ring_timed_runs": runs,
                    "ring_mem_per_device_bytes": ring_mem,
                    "dense_n8_tokens": n // RING,
                    "dense_n8_time_s": dense_small_time,
                    "dense_n8_mem_bytes": small_mem,
                    "dense_n_mem_bytes": _memory(dense_full),
                    "ratio_ring_to_dense_n8": ring_mem / small_mem,
                    "accept": ring_mem / small_mem <= ACCEPT,
                }
            )
            del args, small
    return rows


COLUMNS = (
    ("tokens", "N", "{}"),
    ("mask", "mask", "{}"),
    ("ring_time_s", "ring 8-dev time (s)", "{:.3f}"),
    ("ring_mem_per_device_bytes", "ring mem/dev (MiB)", "MiB"),
    ("dense_n8_time_s", "dense N/8 time (s)", "{:.3f}"),
    ("dense_n8_mem_bytes", "dense N/8 mem (MiB)", "MiB"),
    ("dense_n_mem_bytes", "dense N mem (MiB, compiled only)", "MiB"),
    ("ratio_ring_to_dense_n8", "ring / dense N/8", "{:.2f}"),
    ("accept", f"≤ {ACCEPT}", "{}"),
)


def _cell(value, fmt: str) -> str:
    return f"{value / 2**20:.1f}" if fmt == "MiB" else fmt.format(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[key], fmt) for key, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)
