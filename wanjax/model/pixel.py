"""The pixel codec of the toy models: an exact, parameter-free stand-in for the VAE with Wan's latent layout.

    codec = PixelCodec(VAEConfig.pixel())            # or make_vae(cfg.vae, rngs)
    z = codec.encode(video)   # [B, T, H, W, 3] in [-1, 1], T = 4k+1 -> [B, k+1, H/s, W/s, 4*3*s*s]
    video = codec.decode(z)   # exact inverse

Like Wan's causal VAE, the first frame is a latent frame of its own (stored 4 times, so every latent frame has
the same channels) and each later latent frame holds the next 4 video frames; space is folded s x s into
channels (space-to-depth). Nothing is learned, so a toy model trained on it is judged on its motion, not on a
VAE's reconstruction error. Channel order: (sub-frame, row, column, rgb).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.config import VAEConfig, check_frame_count
from wanjax.errors import WanjaxError

FRAMES_PER_LATENT = 4


class PixelCodec(nnx.Module):
    def __init__(self, cfg: VAEConfig):
        cfg.validate()
        self.cfg = cfg

    def encode(self, video: jax.Array) -> jax.Array:
        """video [B, T, H, W, 3] (T = 4k+1) -> latents [B, k+1, H/s, W/s, 12 s²]."""
        B, T, H, W, C = video.shape
        s = self.cfg.pixel_size
        check_frame_count(T, "video frames", FRAMES_PER_LATENT)
        if H % s or W % s or C != 3:
            raise WanjaxError(f"video {video.shape}: expected [B, T, H, W, 3] with H and W multiples of {s}")
        video = jnp.concatenate([jnp.repeat(video[:, :1], FRAMES_PER_LATENT, axis=1), video[:, 1:]], axis=1)
        return fold(video.reshape(B, T // FRAMES_PER_LATENT + 1, FRAMES_PER_LATENT, H, W, C), s)

    def decode(self, z: jax.Array) -> jax.Array:
        """latents [B, F, h, w, 12 s²] -> video [B, 4(F-1)+1, h s, w s, 3]; frame 0 is the mean of its 4 copies."""
        x = unfold(z, self.cfg.pixel_size)
        x = x.reshape(x.shape[0], -1, *x.shape[3:])
        return jnp.concatenate([x[:, :FRAMES_PER_LATENT].mean(axis=1, keepdims=True), x[:, FRAMES_PER_LATENT:]], 1)


def fold(video: jax.Array, s: int) -> jax.Array:
    """Sub-frames [B, F, k, H, W, 3] -> latents [B, F, H/s, W/s, k s² 3] (channels: sub-frame, row, column, rgb)."""
    B, F, k, H, W, C = video.shape
    x = video.reshape(B, F, k, H // s, s, W // s, s, C).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(B, F, H // s, W // s, k * s * s * C)


def unfold(z: jax.Array, s: int, k: int = FRAMES_PER_LATENT) -> jax.Array:
    """Latents [B, F, h, w, k s² 3] -> sub-frames [B, F, k, h s, w s, 3]: fold's inverse."""
    B, F, h, w, _ = z.shape
    x = z.reshape(B, F, h, w, k, s, s, 3).transpose(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(B, F, k, h * s, w * s, 3)


def subframe_ramp(x0: jax.Array, x: jax.Array, clean: jax.Array, k: int = FRAMES_PER_LATENT) -> jax.Array:
    """model.subframe_ramp: x0 [B, F, h, w, C] (C = k sub-frames, sub-frame-major as `fold` lays them out) with
    sub-frame j of latent frame f >= 1 moved by (1 - (j+1)/k) (prev_f - x0[f, last]), prev_f the last sub-frame of
    frame f-1: x's [B, F, h, w, C] (the model input) where clean [B, F] (sigma 0: conditioning or finished frames),
    else x0's. Sub-frames drawn alike become a linear blend from prev_f; the last sub-frame and frame 0 are kept."""
    B, F, h, w, C = x0.shape
    sub = x0.reshape(B, F, h, w, k, C // k)
    known = jnp.where(clean[:, :, None, None, None, None], x.reshape(sub.shape).astype(sub.dtype), sub)
    ramp = (1 - (jnp.arange(k, dtype=sub.dtype) + 1) / k)[:, None]  # [k, 1]
    delta = (known[:, :-1, ..., -1:, :] - sub[:, 1:, ..., -1:, :]) * ramp  # [B, F-1, h, w, k, C/k]
    return jnp.concatenate([sub[:, :1], sub[:, 1:] + delta], axis=1).reshape(x0.shape)


def make_vae(cfg: VAEConfig, rngs: nnx.Rngs) -> nnx.Module:
    """The latent codec a config names: Wan's VAE (random init from rngs) or the pixel codec."""
    if cfg.kind == "pixel":
        return PixelCodec(cfg)
    from wanjax.model.vae import WanVAE

    return WanVAE(cfg, rngs=rngs)
