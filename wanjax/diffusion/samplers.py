"""One sampler loop for every schedule: a velocity function and a sigma matrix [steps + 1, F].

Row i holds each latent frame's sigma before step i (a synchronous schedule has equal columns); frames whose
sigma does not change in a step are left as they are by the update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

# (params, x [B, F, H, W, C], sigma [F], step index (traced int32)) -> v, same shape as x. Params are an
# argument, not a closure, so the jitted step does not bake a multi-GB model into its program as constants.
VelocityFn = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]


def guidance_weights(
    text: bool, motion: bool, scale_text: float, scale_motion: float
) -> list[tuple[bool, bool, float]]:
    """Classifier-free guidance with separate text and motion scales as a weighted sum of branches
    (use text, use motion, weight):

        v = v(∅, ∅) + g_t (v(text, ∅) - v(∅, ∅)) + g_m (v(text, motion) - v(text, ∅))

    An absent condition counts as scale 1 (its branches coincide and are merged); zero-weight branches are left
    out, so with both scales 1 this is one model call."""
    g_t = scale_text if text else 1.0
    g_m = scale_motion if motion else 1.0
    weights: dict[tuple[bool, bool], float] = {}
    for use_text, use_motion, w in ((text, motion, g_m), (text, False, g_t - g_m), (False, False, 1.0 - g_t)):
        weights[use_text, use_motion] = weights.get((use_text, use_motion), 0.0) + w
    return [(t, m, w) for (t, m), w in weights.items() if w != 0.0]


def euler_update(x: jax.Array, v: jax.Array, sigma: jax.Array, sigma_next: jax.Array) -> jax.Array:
    """One Euler step of dx/dsigma = v per latent frame. x, v [B, F, H, W, C]; sigma, sigma_next [F]."""
    ds = (sigma_next - sigma).astype(x.dtype)[None, :, None, None, None]
    return x + ds * v


def sample(velocity: VelocityFn, params: Any, noise: jax.Array, sigmas: np.ndarray, progress: bool = True) -> jax.Array:
    """Integrate from `noise` [B, F, H, W, C] along `sigmas` [steps + 1, F] with Euler steps."""
    sigmas = np.asarray(sigmas, np.float32)
    if sigmas.ndim != 2 or sigmas.shape[1] != noise.shape[1]:
        raise ValueError(f"sigmas {sigmas.shape} must be [steps + 1, F={noise.shape[1]}]")

    @jax.jit
    def step(params, x, s, s_next, i):
        return euler_update(x, velocity(params, x, s, i), s, s_next)

    x = noise
    for i in tqdm(range(len(sigmas) - 1), desc="sampling", disable=not progress, leave=False):
        x = step(params, x, jnp.asarray(sigmas[i]), jnp.asarray(sigmas[i + 1]), jnp.int32(i))
    return x
