"""Wan2.2 VAE pieces (diffusers `AutoencoderKLWan(is_residual=True)`): patchify and the residual down/up blocks.

The Wan2.2 VAE sees a video as 2x2 pixel patches (12 channels per position) and its down/up blocks add a
parameter-free shortcut around each resolution change: channel-group averages of space/time-to-depth going
down (AvgDown3D), channel duplication then depth-to-space/time going up (DupUp3D). All arrays are
channels-last [B, T, H, W, C]; the blocks follow vae_blocks.py's `layer(x, cache) -> (y, cache)` protocol,
where a None cache marks the video's first chunk.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.model.vae_blocks import Resample, resnet_stack, run_causal


def patchify(x: jax.Array, p: int) -> jax.Array:
    """Space-to-depth [B, T, H, W, C] -> [B, T, H/p, W/p, C p²], channel c p² + pw p + ph (diffusers' order:
    the width offset before the height offset)."""
    if p == 1:
        return x
    B, T, H, W, C = x.shape
    x = x.reshape(B, T, H // p, p, W // p, p, C).transpose(0, 1, 2, 4, 6, 5, 3)
    return x.reshape(B, T, H // p, W // p, C * p * p)


def unpatchify(x: jax.Array, p: int) -> jax.Array:
    """The inverse of `patchify`: [B, T, h, w, C p²] -> [B, T, h p, w p, C]."""
    if p == 1:
        return x
    B, T, h, w, K = x.shape
    x = x.reshape(B, T, h, w, K // (p * p), p, p).transpose(0, 1, 2, 6, 3, 5, 4)
    return x.reshape(B, T, h * p, w * p, K // (p * p))


def avg_down(x: jax.Array, factor_t: int, factor_s: int, cout: int) -> jax.Array:
    """AvgDown3D: x [B, T, H, W, C] -> [B, ceil(T/ft), H/fs, W/fs, cout], space/time-to-depth (channel
    c·F + dt fs² + dh fs + dw, F = ft fs²) then the mean of each run of C F / cout channels.

    Time is zero-padded in front to a multiple of ft, as the reference pads each chunk: a video's first chunk
    (4k+1 frames, odd) thus pairs frame 0 with a zero frame and the later (even) chunks pair aligned frames.
    """
    x = jnp.pad(x, [(0, 0), (-x.shape[1] % factor_t, 0), (0, 0), (0, 0), (0, 0)])
    B, T, H, W, C = x.shape
    x = x.reshape(B, T // factor_t, factor_t, H // factor_s, factor_s, W // factor_s, factor_s, C)
    x = x.transpose(0, 1, 3, 5, 7, 2, 4, 6)  # [B, T', H', W', C, ft, fs, fs]
    return x.reshape(B, T // factor_t, H // factor_s, W // factor_s, cout, -1).mean(axis=-1)


def dup_up(x: jax.Array, factor_t: int, factor_s: int, cout: int, first: bool) -> jax.Array:
    """DupUp3D: x [B, T, H, W, C] -> [B, T ft, H fs, W fs, cout] by repeating each channel cout F / C times and
    moving channel o·F + dt fs² + dh fs + dw to (time dt, row dh, column dw) of output channel o.

    On the video's first chunk the first ft - 1 frames are dropped: frame 0 maps to one frame, matching the
    temporal upsampler (vae_blocks.Resample), which does not double it.
    """
    B, T, H, W, C = x.shape
    x = jnp.repeat(x, cout * factor_t * factor_s**2 // C, axis=-1)
    x = x.reshape(B, T, H, W, cout, factor_t, factor_s, factor_s).transpose(0, 1, 5, 2, 6, 3, 7, 4)
    x = x.reshape(B, T * factor_t, H * factor_s, W * factor_s, cout)
    return x[:, factor_t - 1 :] if first else x


def _factors(mode: str | None) -> tuple[int, int]:
    """(time, space) factors of a resample mode: 3d modes change time 2x, every mode space 2x."""
    return (2 if mode.endswith("3d") else 1, 2) if mode else (1, 1)


class ResidualDownBlock(nnx.Module):
    """WanResidualDownBlock: `num_res_blocks` residual blocks, an optional downsampler, plus avg_down(x)."""

    def __init__(self, cin: int, cout: int, num_res_blocks: int, mode: str | None, *, dtype: jnp.dtype, rngs):
        self.cout, self.factors = cout, _factors(mode)
        self.resnets = resnet_stack(cin, cout, num_res_blocks, dtype=dtype, rngs=rngs)
        self.downsampler = Resample(cout, mode, dtype=dtype, rngs=rngs) if mode else None

    def __call__(self, x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        """x [B, T, H, W, I] -> ([B, T', H/fs, W/fs, O], cache); T' = T/ft, or (T-1)/ft + 1 at the start."""
        layers = [*self.resnets, *([self.downsampler] if self.downsampler is not None else [])]
        y, cache = run_causal(layers, x, cache)
        return y + avg_down(x, *self.factors, self.cout), cache


class ResidualUpBlock(nnx.Module):
    """WanResidualUpBlock: `num_res_blocks + 1` residual blocks, then, if it upsamples, an upsampler that keeps
    the width plus dup_up(x)."""

    def __init__(self, cin: int, cout: int, num_res_blocks: int, mode: str | None, *, dtype: jnp.dtype, rngs):
        self.cout, self.factors = cout, _factors(mode)
        self.resnets = resnet_stack(cin, cout, num_res_blocks + 1, dtype=dtype, rngs=rngs)
        self.upsampler = Resample(cout, mode, out_dim=cout, dtype=dtype, rngs=rngs) if mode else None

    def __call__(self, x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        """x [B, T, H, W, I] -> ([B, T', H fs, W fs, O], cache); T' = T ft, or (T-1) ft + 1 at the start."""
        if self.upsampler is None:
            return run_causal(list(self.resnets), x, cache)
        y, new_cache = run_causal([*self.resnets, self.upsampler], x, cache)
        return y + dup_up(x, *self.factors, self.cout, first=cache is None), new_cache
