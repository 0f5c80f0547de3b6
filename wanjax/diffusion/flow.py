"""Flow matching as Wan trains and samples it: x_t = (1 - sigma) x + sigma * eps, velocity v = eps - x.

The model's timestep is sigma * 1000. Sigma schedules are shifted toward noise (Wan's `shift`).
"""

from __future__ import annotations

import jax
import numpy as np

NUM_TRAIN_TIMESTEPS = 1000


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """Wan/SD3 time shift: sigma' = shift * sigma / (1 + (shift - 1) * sigma); keeps 0 and 1 fixed."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sampling_sigmas(steps: int, shift: float) -> np.ndarray:
    """Decreasing sigmas [steps + 1] from 1 (pure noise) to 0 (clean), shifted."""
    return shift_sigmas(np.linspace(1.0, 0.0, steps + 1), shift)


def add_noise(x: jax.Array, eps: jax.Array, sigma: jax.Array) -> jax.Array:
    """x_t = (1 - sigma) x + sigma eps; sigma broadcasts from the left ([B] or [B, F] for x [B, F, H, W, C])."""
    sigma = sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim))
    return (1 - sigma) * x + sigma * eps


def velocity_target(x: jax.Array, eps: jax.Array) -> jax.Array:
    """d x_t / d sigma = eps - x."""
    return eps - x
