"""Test setup: 8 fake CPU devices and fp32 matmuls, set before JAX is imported anywhere."""

import os

# On 2 busy cores one fake device's thread can reach a collective more than XLA's default 40 s after the others,
# and XLA then aborts the process; wait longer (the training subprocesses inherit the flag).
FLAGS = " --xla_force_host_platform_device_count=8 --xla_cpu_collective_call_terminate_timeout_seconds=600"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + FLAGS).strip()
# XLA's CPU client runs each device's part of a program on a pool of max(cores, devices) = 8 threads, and a
# collective holds all 8 at once; a dispatch waiting for an in-flight slot can hold one too, and then nothing moves.
# 8 spare threads make that impossible (the training and sampling loops also keep at most one step queued).
os.environ.setdefault("PJRT_NPROC", "16")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["WANJAX_COMPILATION_CACHE"] = "off"  # hermetic: no compiled programs shared between tests or runs

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

assert jax.device_count() == 8, f"tests need 8 fake CPU devices, got {jax.device_count()}"
