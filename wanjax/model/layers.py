"""Small layers of the Wan DiT: norms, modulation, FFN, time, text and image embedders.

Parameters carry `logical_axes` metadata (`embed`, `mlp`, `heads`, ...) that parallel/mesh.py maps to mesh
axes. (Not flax's `sharding_names`: those are placed eagerly at creation, before our rules are applied.)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.config import ModelConfig


def dtypes(cfg: ModelConfig) -> dict:
    return {"dtype": jnp.dtype(cfg.dtype), "param_dtype": jnp.dtype(cfg.param_dtype)}


def dense(
    cfg: ModelConfig, d_in: int, d_out: int, axes: tuple[str | None, str | None], rngs: nnx.Rngs, zero: bool = False
) -> nnx.Linear:
    """A Linear whose kernel [d_in, d_out] is annotated with logical axes `axes`; zero: kernel initialised to 0."""
    kernel = nnx.initializers.zeros_init() if zero else nnx.initializers.lecun_normal()
    init = nnx.with_metadata(kernel, logical_axes=axes)
    bias_init = nnx.with_metadata(nnx.initializers.zeros_init(), logical_axes=(axes[1],))
    return nnx.Linear(d_in, d_out, kernel_init=init, bias_init=bias_init, rngs=rngs, **dtypes(cfg))


def layer_norm(x: jax.Array, eps: float) -> jax.Array:
    """LayerNorm without affine parameters, computed in fp32 (the reference's FP32LayerNorm)."""
    x = x.astype(jnp.float32)
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    """RMSNorm over the last axis (all heads together, as Wan normalises q and k), computed in fp32."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + eps)
    return (y * scale.astype(jnp.float32)).astype(x.dtype)


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """adaLN per latent frame. x [B, F, S, D] (S tokens per frame), shift/scale [B, F, D]."""
    return x * (1 + scale[:, :, None]) + shift[:, :, None]


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal embedding [..., dim] of timesteps t [...], cos first (diffusers flip_sin_to_cos=True)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = t.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, cfg: ModelConfig):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), jnp.dtype(cfg.param_dtype)), logical_axes=("heads",))

    def __call__(self, x: jax.Array) -> jax.Array:
        return rms_norm(x, self.scale[...], self.eps)


class LayerNorm(nnx.Module):
    """Affine LayerNorm in fp32 (Wan's cross-attention norm)."""

    def __init__(self, dim: int, eps: float, cfg: ModelConfig, axis: str | None = "embed"):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), jnp.dtype(cfg.param_dtype)), logical_axes=(axis,))
        self.bias = nnx.Param(jnp.zeros((dim,), jnp.dtype(cfg.param_dtype)), logical_axes=(axis,))

    def __call__(self, x: jax.Array) -> jax.Array:
        return layer_norm(x, self.eps) * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)


class FeedForward(nnx.Module):
    """Linear -> GELU(tanh) -> Linear. x [..., D] -> [..., D]."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.fc_in = dense(cfg, cfg.dim, cfg.ffn_dim, ("embed", "mlp"), rngs)
        self.fc_out = dense(cfg, cfg.ffn_dim, cfg.dim, ("mlp", "embed"), rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc_out(jax.nn.gelu(self.fc_in(x), approximate=True))


class TimeEmbedder(nnx.Module):
    """t [B, F] -> (temb [B, F, D] for the head, per-block modulation [B, F, 6, D])."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.freq_dim = cfg.freq_dim
        self.linear_1 = dense(cfg, cfg.freq_dim, cfg.dim, (None, "embed"), rngs)
        self.linear_2 = dense(cfg, cfg.dim, cfg.dim, ("embed", None), rngs)
        self.time_proj = dense(cfg, cfg.dim, 6 * cfg.dim, ("embed", None), rngs)

    def __call__(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        temb = self.linear_2(jax.nn.silu(self.linear_1(timestep_embedding(t, self.freq_dim))))
        mod = self.time_proj(jax.nn.silu(temb))
        return temb, mod.reshape(*mod.shape[:-1], 6, -1)


class TextEmbedder(nnx.Module):
    """Text encoder states [B, M, text_dim] -> [B, M, D] (Linear -> GELU(tanh) -> Linear)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.linear_1 = dense(cfg, cfg.text_dim, cfg.dim, (None, "embed"), rngs)
        self.linear_2 = dense(cfg, cfg.dim, cfg.dim, ("embed", None), rngs)

    def __call__(self, context: jax.Array) -> jax.Array:
        return self.linear_2(jax.nn.gelu(self.linear_1(context), approximate=True))


class ImageEmbedder(nnx.Module):
    """CLIP image tokens [B, I, image_dim] -> [B, I, D]: affine LayerNorm, Linear -> GELU (exact) -> Linear, affine
    LayerNorm (diffusers `WanImageEmbedding`). With pos_embed_seq_len (FLF2V: the first and the last frame's 257
    tokens each, I = 514), a learned position table is added first."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.norm1 = LayerNorm(cfg.image_dim, 1e-5, cfg, axis=None)  # torch's LayerNorm default eps
        self.fc_in = dense(cfg, cfg.image_dim, cfg.image_dim, (None, None), rngs)
        self.fc_out = dense(cfg, cfg.image_dim, cfg.dim, (None, "embed"), rngs)
        self.norm2 = LayerNorm(cfg.dim, 1e-5, cfg)
        rows = cfg.pos_embed_seq_len
        table = None if rows is None else jnp.zeros((rows, cfg.image_dim), jnp.dtype(cfg.param_dtype))
        self.pos_embed = nnx.data(None if table is None else nnx.Param(table, logical_axes=(None, None)))

    def __call__(self, image: jax.Array) -> jax.Array:
        if self.pos_embed is not None:
            image = image + self.pos_embed[...].astype(image.dtype)
        h = self.fc_out(jax.nn.gelu(self.fc_in(self.norm1(image).astype(image.dtype)), approximate=False))
        return self.norm2(h).astype(h.dtype)
