"""Sparse trajectory embeddings: brush tracks -> a map on the latent grid that the DiT adds to its patch tokens.

    tokens = MotionEmbed(model_cfg, rngs)(motion, first_latent)   # [B, F, h, w, subframes * motion_dim]

`Motion` is what the DiT's `motion` argument carries (the host builds it from compiled brushes:
wanjax.motion.embed.motion_input). Each track point p gets an embedding e_p = W · z0(start_p) (the first-frame
latent sampled bilinearly at its start) + a fixed random id code + a fixed random code of its brush + a learned
embedding of its kind. For every video frame the embeddings are Gaussian-splatted at the point's position onto the
latent grid (sub-cell precision: the weights are continuous in the position) and normalised where points overlap;
the 4 video frames of a latent frame are stacked as channels. The DiT patchifies this map like the latent and adds
it to the patch tokens through a zero-initialised linear layer (wanjax.model.dit), so an untrained branch changes
nothing.

`latent_copy` is the Wan-Move baseline: z0(start_p) itself copied to the nearest latent cell of the point's
position at the last video frame of each latent frame; no codes, no sub-cell position, no sub-frames.
Shapes: B batch, P track points, F latent frames, k sub-frames per latent frame, h w latent grid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx, struct

from wanjax.config import ModelConfig

# A track's kind is its brush's mode (wanjax.motion.brush); the order indexes MotionEmbed.kind_embed's rows.
KINDS = ("path", "sway", "flow", "static", "camera")
MAX_BRUSHES = 64
ID_SEED, BRUSH_SEED = 17, 29  # fixed random codes: the same for training and sampling


@struct.dataclass
class Motion:
    """What the DiT's `motion` argument carries (device arrays; static shapes, so no retrace on track count)."""

    xy: jax.Array  # [B, P, F, k, 2] positions in latent cells (x, y), per video frame of each latent frame
    visible: jax.Array  # [B, P, F, k] bool
    valid: jax.Array  # [B, P] bool (padding and dropped brushes are False)
    kind: jax.Array  # [B, P] int32, index into KINDS
    brush: jax.Array  # [B, P] int32 brush index
    strength: jax.Array  # [B] float32: scales the injected tokens (the motion strength knob)

    def dropped(self, drop: jax.Array | bool = True) -> Motion:
        """The same tracks with every point of the examples where `drop` [B] (or all) marked invalid."""
        drop = jnp.broadcast_to(jnp.asarray(drop), self.valid.shape[:1])
        return self.replace(valid=self.valid & ~drop[:, None])


def bilinear(grid: jax.Array, xy: jax.Array) -> jax.Array:
    """Sample grid [B, h, w, C] at xy [B, P, 2] (cell units, clamped to the grid) -> [B, P, C]. One gather per
    point: the grid's 2 x 2 neighbourhoods are packed as channels first ([B, h-1, w-1, 4C])."""
    B, h, w, C = grid.shape
    x, y = jnp.clip(xy[..., 0], 0, w - 1), jnp.clip(xy[..., 1], 0, h - 1)
    x0, y0 = jnp.clip(jnp.floor(x), 0, w - 2).astype(jnp.int32), jnp.clip(jnp.floor(y), 0, h - 2).astype(jnp.int32)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    quad = jnp.concatenate([grid[:, :-1, :-1], grid[:, :-1, 1:], grid[:, 1:, :-1], grid[:, 1:, 1:]], axis=-1)
    at = (jnp.arange(B)[:, None] * (h - 1) + y0) * (w - 1) + x0  # [B, P] rows of the flattened neighbourhoods
    q = jnp.take(quad.reshape(-1, 4 * C), at, axis=0, mode="clip")  # [B, P, 4C]
    top = q[..., :C] * (1 - fx) + q[..., C : 2 * C] * fx
    bottom = q[..., 2 * C : 3 * C] * (1 - fx) + q[..., 3 * C :] * fx
    return top * (1 - fy) + bottom * fy


def splat(emb: jax.Array, xy: jax.Array, weight: jax.Array, h: int, w: int, sigma: float | None) -> jax.Array:
    """Gaussian splat of point embeddings onto the grid, per frame and sub-frame.

    emb [B, P, C], xy [B, P, F, k, 2] (cells), weight [B, P, F, k] (0 = point absent) -> [B, F, h, w, k * C].
    Separable weights exp(-d² / 2σ²) (sigma None: all weight on the nearest cell); where the weights of several
    points sum above 1 the map is their weighted mean, elsewhere it fades out with the distance. The points are the
    minor axis throughout: the weights' outer product [B, F, k, h w, P] is one contiguous product, and the sum over
    points one batched matmul with emb."""
    xy, weight = jnp.moveaxis(xy, 1, 3), jnp.moveaxis(weight, 1, 3)  # [B, F, k, P, 2], [B, F, k, P]
    B, F, k = weight.shape[:3]

    def axis(coord, size):  # [B, F, k, P] -> [B, F, k, size, P]
        d = jnp.arange(size, dtype=jnp.float32)[:, None] - coord[..., None, :]
        return (jnp.abs(d) <= 0.5).astype(jnp.float32) if sigma is None else jnp.exp(-0.5 * jnp.square(d / sigma))

    wx, wy = axis(xy[..., 0], w) * weight[..., None, :], axis(xy[..., 1], h)
    outer = (wy[..., :, None, :] * wx[..., None, :, :]).reshape(B, F, k, h * w, -1)
    num = jnp.einsum("bfkqp,bpc->bfkqc", outer, emb)
    den = jnp.einsum("bfkyp,bfkxp->bfkyx", wy, wx).reshape(B, F, k, h * w)
    out = num / jnp.maximum(den, 1.0)[..., None]  # [B, F, k, h w, C]
    return jnp.moveaxis(out, 2, 3).reshape(B, F, h, w, -1)


class MotionEmbed(nnx.Module):
    """The learned part of the trajectory embedding; returns the map the DiT patchifies."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.mode, self.sigma = cfg.motion, cfg.motion_sigma
        if cfg.motion == "splat":
            c = cfg.motion_dim
            z = cfg.out_channels  # the latent's channels (an image-to-video DiT reads more: its condition)
            init = jax.random.normal(rngs.params(), (z, c), jnp.float32) / z**0.5
            self.latent_proj = nnx.Param(init)
            self.kind_embed = nnx.Param(jax.random.normal(rngs.params(), (len(KINDS), c), jnp.float32))

    @staticmethod
    def channels(cfg: ModelConfig) -> int:
        """Channels per latent cell of the map."""
        if cfg.motion == "latent_copy":
            return cfg.out_channels
        return cfg.motion_subframes * cfg.motion_dim

    def __call__(self, motion: Motion, first_latent: jax.Array) -> jax.Array:
        """motion (P points), first_latent [B, h, w, C] -> map [B, F, h, w, channels]."""
        h, w = first_latent.shape[1:3]
        start = motion.xy[:, :, 0, 0]  # [B, P, 2]: every point's position in frame 0
        z0 = bilinear(first_latent.astype(jnp.float32), start)
        weight = (motion.visible & motion.valid[:, :, None, None]).astype(jnp.float32)
        if self.mode == "latent_copy":
            return splat(z0, motion.xy[:, :, :, -1:], weight[..., -1:], h, w, None)
        B, P = motion.valid.shape
        c = self.kind_embed.shape[1]
        ids = jax.random.normal(jax.random.key(ID_SEED), (P, c))
        brushes = jax.random.normal(jax.random.key(BRUSH_SEED), (MAX_BRUSHES, c))
        emb = z0 @ self.latent_proj[...] + ids + brushes[motion.brush] + self.kind_embed[...][motion.kind]
        return splat(emb, motion.xy, weight, h, w, self.sigma)
