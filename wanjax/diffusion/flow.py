"""Flow matching as Wan trains and samples it: x_t = (1 - sigma) x + sigma * eps, velocity v = eps - x.

The model's timestep is sigma * 1000. Sigma schedules are shifted toward noise (Wan's `shift`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NUM_TRAIN_TIMESTEPS = 1000


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """Wan/SD3 time shift: sigma' = shift * sigma / (1 + (shift - 1) * sigma); keeps 0 and 1 fixed."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


TIMESTEPS = ("wan", "continuous")


def sampling_sigmas(steps: int, shift: float, timesteps: str = "continuous") -> np.ndarray:
    """Decreasing sigmas [steps + 1] from 1 (pure noise) to 0 (clean), shifted.

    timesteps "continuous": linspace(1, 0); "wan": Wan's flow UniPC schedule as diffusers' UniPCMultistepScheduler
    sets it (use_flow_sigmas): linspace(1, 1/1000, steps + 1) without its last value, shifted, the first lowered
    by 1e-6, then 0 appended (float32 values, as the scheduler holds them)."""
    if timesteps == "continuous":
        return shift_sigmas(np.linspace(1.0, 0.0, steps + 1), shift)
    sigmas = shift_sigmas(np.linspace(1.0, 1.0 / NUM_TRAIN_TIMESTEPS, steps + 1)[:-1], shift)
    sigmas[0] -= 1e-6 if abs(sigmas[0] - 1) < 1e-6 else 0.0
    return np.concatenate([sigmas, [0.0]]).astype(np.float32).astype(np.float64)


def add_noise(x: jax.Array, eps: jax.Array, sigma: jax.Array) -> jax.Array:
    """x_t = (1 - sigma) x + sigma eps; sigma broadcasts from the left ([B] or [B, F] for x [B, F, H, W, C])."""
    sigma = sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim))
    return (1 - sigma) * x + sigma * eps


def frame_noise(key: jax.Array, shape: tuple[int, ...], correlation: float = 0.0) -> jax.Array:
    """Standard normal noise [B, F, ...] whose latent frames (axis 1) correlate by `correlation` c: sqrt(c) x one
    draw shared by the frames + sqrt(1 - c) x one per frame (PYoCo's mixed noise, Ge et al. 2023). Each value stays
    N(0, 1), so the flow-matching path is unchanged; errors a sampler makes from it are alike across frames. c = 0:
    exactly jax.random.normal(key, shape)."""
    if correlation == 0.0:
        return jax.random.normal(key, shape)
    k_own, k_shared = jax.random.split(key)
    shared = jax.random.normal(k_shared, (shape[0], 1, *shape[2:]))
    return correlation**0.5 * shared + (1 - correlation) ** 0.5 * jax.random.normal(k_own, shape)


def velocity_target(x: jax.Array, eps: jax.Array) -> jax.Array:
    """d x_t / d sigma = eps - x."""
    return eps - x


def sample_sigmas(key: jax.Array, shape: tuple[int, ...], sampling: str, shift: float) -> jax.Array:
    """Training noise levels in (0, 1): uniform or logit-normal (SD3 / Wan), then shifted."""
    if sampling == "uniform":
        u = jax.random.uniform(key, shape)
    else:
        u = jax.nn.sigmoid(jax.random.normal(key, shape))
    return shift * u / (1 + (shift - 1) * u)


def frame_sigmas(
    key: jax.Array, batch: int, frames: int, segment_frames: int, per_segment_prob: float, sampling: str, shift: float
) -> jax.Array:
    """Noise levels [B, F]: one per example, or (with probability per_segment_prob, diffusion forcing) one per
    segment of `segment_frames` latent frames, so both synchronous and pyramid sampling are learned.
    """
    k_one, k_seg, k_pick = jax.random.split(key, 3)
    segments = -(-frames // segment_frames)
    one = sample_sigmas(k_one, (batch, 1), sampling, shift)
    per_seg = jnp.repeat(sample_sigmas(k_seg, (batch, segments), sampling, shift), segment_frames, axis=1)[:, :frames]
    pick = jax.random.bernoulli(k_pick, per_segment_prob, (batch, 1))
    return jnp.where(pick, per_seg, one)


def flow_loss(
    pred: jax.Array, x: jax.Array, eps: jax.Array, frame_weight: jax.Array | None = None, sigma: jax.Array | None = None
) -> jax.Array:
    """Mean squared velocity error. pred/x/eps [B, F, H, W, C]; frame_weight [B, F] (0 = excluded frame). Given the
    frames' sigma [B, F], each frame's error is multiplied by sigma²: the clean-sample error |x0' - x0|² of
    x0' = x_t - sigma v' (Li & He 2025's x-loss), which weighs every noise level alike."""
    err = jnp.square(pred.astype(jnp.float32) - velocity_target(x, eps).astype(jnp.float32)).mean(axis=(2, 3, 4))
    if sigma is not None:
        err = err * jnp.square(sigma)
    if frame_weight is None:
        return err.mean()
    return (err * frame_weight).sum() / jnp.maximum(frame_weight.sum(), 1.0)
