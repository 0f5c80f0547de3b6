"""Test setup: 8 fake CPU devices and fp32 matmuls, set before JAX is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

assert jax.device_count() == 8, f"tests need 8 fake CPU devices, got {jax.device_count()}"
