"""The DiT as the sampler's velocity function (`wanjax.diffusion.samplers.sample`): the classifier-free-guidance
branches as one batch, combined by their weights; the image condition's channels appended; CLIP image tokens; the
model's timesteps; and, for pyramid sampling, a K/V cache of the finished segments.

One function per static setting (functools.lru_cache), so the sampler's compiled step is reused by every later call
with the same model and shapes. Shapes: B batch, F latent frames, h w latent grid, C channels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.diffusion.conditioning import with_condition
from wanjax.diffusion.flow import NUM_TRAIN_TIMESTEPS
from wanjax.model.dit import AttnSpec


def model_velocity(graphdef, branches: tuple, batch: int, params, x, t, **kw):
    """The CFG branches as one batch through the DiT, combined by their weights -> v [batch, ...]."""
    n = len(branches)
    for key in ("image_context", "first_frame"):
        if kw.get(key) is not None:
            kw[key] = jnp.concatenate([kw[key]] * n)
    v = nnx.merge(graphdef, params)(jnp.concatenate([x] * n), t, **kw)
    combine = lambda v: sum(w * v[i * batch : (i + 1) * batch] for i, (_, _, w) in enumerate(branches))  # noqa: E731
    return (combine(v[0]), v[1]) if kw.get("return_kv") else combine(v)


def timesteps(sigma: jax.Array, integer_t: bool) -> jax.Array:
    """The DiT's timesteps [F] at sigmas [F]: 1000 sigma, truncated to an integer as Wan's scheduler does
    (sample.timesteps=wan)."""
    t = sigma * NUM_TRAIN_TIMESTEPS
    return jnp.trunc(t) if integer_t else t


@functools.lru_cache(maxsize=16)
def velocity_fn(graphdef, branches: tuple, batch: int, attn: AttnSpec, a: int, b: int, integer_t: bool) -> Callable:
    """velocity((params, context, motion, condition, image_context), x, sigma, step) for `sample`; one function per
    static setting, so the sampler's compiled step is reused by every later call with the same model and shapes."""

    def velocity(inputs, x, sigma, step):
        params, ctx, motion, condition, image_context = inputs
        on = (step >= a) & (step < b)
        m = None
        if motion is not None:
            m = jax.tree.map(lambda *v: jnp.concatenate(v), *[motion.dropped(~(on & use)) for _, use, _ in branches])
        t = jnp.broadcast_to(timesteps(sigma, integer_t), (len(branches) * batch, sigma.shape[0]))
        x = with_condition(x, condition)
        kw = {"context": ctx, "motion": m, "attn": attn, "image_context": image_context}
        return model_velocity(graphdef, branches, batch, params, x, t, **kw)

    return velocity


@functools.lru_cache(maxsize=16)
def cached_velocity_fn(
    graphdef, branches: tuple, batch: int, attn: AttnSpec, tokens_per_frame: int, length: int, integer_t: bool
):
    """A pyramid velocity that runs the DiT on each step's window of `length` latent frames only
    (`pyramid_windows`), reading the frames before it from a K/V cache it keeps up to date:
    velocity((params, context, motion, starts), x, sigma, i, cache) -> (v, cache), with starts [steps] the
    window starts and cache (K, V) [layers, branches · batch, F · tokens_per_frame, N, K]; x's frame 0 is the
    clip's (model.residual=first_frame adds it to every window). Equal to recomputing
    the whole clip each step. One function per static setting, so a second video compiles nothing."""
    S = tokens_per_frame

    def velocity(inputs, x, sigma, step, cache):
        params, ctx, _, starts = inputs
        lo = starts[step]
        xw = jax.lax.dynamic_slice_in_dim(x, lo, length, axis=1)
        t = timesteps(jax.lax.dynamic_slice_in_dim(sigma, lo, length), integer_t)
        t = jnp.broadcast_to(t, (len(branches) * batch, length))
        kw = {"context": ctx, "attn": attn, "kv_cache": (*cache, lo), "return_kv": True, "first_frame": x[:, :1]}
        v, kv = model_velocity(graphdef, branches, batch, params, xw, t, **kw)
        cache = tuple(jax.lax.dynamic_update_slice_in_dim(c, n, lo * S, axis=2) for c, n in zip(cache, kv, strict=True))
        return jax.lax.dynamic_update_slice_in_dim(jnp.zeros_like(x), v, lo, axis=1), cache

    return velocity
