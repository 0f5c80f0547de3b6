"""The Wan2.1 and Wan2.2 causal 3D VAEs (diffusers `AutoencoderKLWan`), channels-last, streaming over time.

    vae = WanVAE(VAEConfig.wan21(), rngs=nnx.Rngs(0))     # or VAEConfig.wan22(), or wanjax.load_vae(folder)
    z = vae.encode(video)    # [B, T, H, W, 3] in [-1, 1], T = 4k+1 -> [B, F, H/s, W/s, z_dim], F = k+1 (normalised)
    video = vae.decode(z)    # [B, F, h, w, z_dim] -> [B, 4(F-1)+1, s h, s w, 3] in [-1, 1]

s = cfg.spatial_stride: 8 for Wan2.1 (z_dim 16); 16 for Wan2.2 (z_dim 48), whose encoder sees 2x2 pixel patches
and whose down/up blocks carry parameter-free shortcuts (vae_residual.py).

Both run the causal encoder/decoder chunk by chunk inside one `lax.scan`, carrying the causal convs' cache
(see vae_blocks.py), so memory is bounded by one chunk and the result equals one piece: no tiles, no seams.
The first chunk is special, as in the reference: the video's first frame maps to one latent frame alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.config import VAEConfig, check_frame_count
from wanjax.errors import WanjaxError
from wanjax.model.vae_blocks import (
    Conv,
    MidBlock,
    Resample,
    RMSNorm,
    UpBlock,
    causal_conv,
    norm_act_conv,
    resnet_stack,
    run_causal,
)
from wanjax.model.vae_residual import ResidualDownBlock, ResidualUpBlock, patchify, unpatchify


def _modes(cfg: VAEConfig, kind: str, temporal: tuple[bool, ...]) -> list[str | None]:
    """Resample mode after each of the len(dim_mult) stages ("{kind}3d" / "{kind}2d"); the last stage has none."""
    return [f"{kind}3d" if t else f"{kind}2d" for t in temporal] + [None] * (len(cfg.dim_mult) - len(temporal))


class Encoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": jnp.dtype(cfg.dtype), "rngs": rngs}
        dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
        self.patch = cfg.patch_size
        self.conv_in = Conv(3 * cfg.patch_size**2, dims[0], (3, 3, 3), **kw)
        blocks = []
        stages = zip(dims[:-1], dims[1:], _modes(cfg, "downsample", cfg.temperal_downsample), strict=True)
        for cin, cout, mode in stages:
            if cfg.is_residual:
                blocks.append(ResidualDownBlock(cin, cout, cfg.num_res_blocks, mode, **kw))
            else:  # Wan2.1 lists the stages' residual blocks and resamplers flat
                blocks += resnet_stack(cin, cout, cfg.num_res_blocks, **kw)
                blocks += [Resample(cout, mode, **kw)] if mode else []
        self.down_blocks = nnx.List(blocks)
        self.mid_block = MidBlock(dims[-1], **kw)
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = Conv(dims[-1], 2 * cfg.z_dim, (3, 3, 3), **kw)  # posterior mean and log-variance

    def __call__(self, x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        """x [B, T, H, W, 3] -> (moments [B, T', H/s, W/s, 2 z_dim], cache); T' = T/4, or (T-1)/4+1 at the start."""
        c_in, c_blocks, c_out = cache or (None, None, None)
        x, c_in = causal_conv(self.conv_in, patchify(x, self.patch), c_in)
        x, c_blocks = run_causal([*self.down_blocks, self.mid_block], x, c_blocks)
        x, c_out = norm_act_conv(self.norm_out, self.conv_out, x, c_out)
        return x, (c_in, c_blocks, c_out)


class Decoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        kw = {"dtype": jnp.dtype(cfg.dtype), "rngs": rngs}
        dims = [cfg.decoder_dim * m for m in (cfg.dim_mult[-1], *cfg.dim_mult[::-1])]
        self.patch = cfg.patch_size
        self.conv_in = Conv(cfg.z_dim, dims[0], (3, 3, 3), **kw)
        self.mid_block = MidBlock(dims[0], **kw)
        blocks = []
        stages = zip(dims[:-1], dims[1:], _modes(cfg, "upsample", cfg.temperal_downsample[::-1]), strict=True)
        for i, (cin, cout, mode) in enumerate(stages):
            if cfg.is_residual:
                blocks.append(ResidualUpBlock(cin, cout, cfg.num_res_blocks, mode, **kw))
            else:  # each Wan2.1 upsampler halves the channels, so later blocks take half the previous width
                blocks.append(UpBlock(cin if i == 0 else cin // 2, cout, cfg.num_res_blocks, mode, **kw))
        self.up_blocks = nnx.List(blocks)
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = Conv(dims[-1], 3 * cfg.patch_size**2, (3, 3, 3), **kw)

    def __call__(self, z: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        """z [B, F, h, w, z_dim] -> (video [B, 4F, s h, s w, 3], cache); 4(F-1)+1 frames at the start."""
        c_in, c_blocks, c_out = cache or (None, None, None)
        x, c_in = causal_conv(self.conv_in, z, c_in)
        x, c_blocks = run_causal([self.mid_block, *self.up_blocks], x, c_blocks)
        x, c_out = norm_act_conv(self.norm_out, self.conv_out, x, c_out)
        return unpatchify(x, self.patch), (c_in, c_blocks, c_out)


def stream(step: Callable, x: jax.Array, first: int, size: int) -> jax.Array:
    """Run a causal `step(chunk, cache) -> (out, cache)` over time: x[:, :first] starts the video (cache None),
    then chunks of `size` frames go through `lax.scan` with the cache as carry. x [B, T, ...] -> [B, T', ...].

    The last chunk is zero-padded to `size` frames and its extra outputs dropped: every layer is causal in time.
    """
    out, cache = step(x[:, :first], None)
    rest = x[:, first:]
    n = -(-rest.shape[1] // size)
    if n == 0:
        return out
    B, T = rest.shape[:2]
    rest = jnp.pad(rest, [(0, 0), (0, n * size - T)] + [(0, 0)] * (rest.ndim - 2))
    chunks = jnp.moveaxis(rest.reshape(B, n, size, *rest.shape[2:]), 1, 0)  # [n, B, size, ...]
    _, outs = jax.lax.scan(lambda c, xc: step(xc, c)[::-1], cache, chunks)  # [n, B, out_size, ...]
    keep = T * outs.shape[2] // size
    outs = jnp.moveaxis(outs, 0, 1).reshape(B, -1, *outs.shape[3:])[:, :keep]
    return jnp.concatenate([out, outs], axis=1)


class WanVAE(nnx.Module):
    """Encoder, quant convs and decoder of Wan's VAE; `encode`/`decode` stream `chunk` latent frames at a time."""

    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs):
        cfg.validate()
        if cfg.attn_scales:
            # diffusers' and Wan's encoders both fail on attention inside down_blocks (it gets a cache argument).
            raise WanjaxError(f"vae.attn_scales={list(cfg.attn_scales)}: only [] (Wan2.1, Wan2.2) is supported")
        self.cfg = cfg
        kw = {"dtype": jnp.dtype(cfg.dtype), "rngs": rngs}
        self.encoder = Encoder(cfg, rngs=rngs)
        self.quant_conv = Conv(2 * cfg.z_dim, 2 * cfg.z_dim, (1, 1, 1), **kw)
        self.post_quant_conv = Conv(cfg.z_dim, cfg.z_dim, (1, 1, 1), **kw)
        self.decoder = Decoder(cfg, rngs=rngs)

    def encode(self, video: jax.Array, chunk: int = 1) -> jax.Array:
        """video [B, T, H, W, 3] in [-1, 1] -> normalised latents [B, F, H/s, W/s, z_dim], F = (T-1)/4 + 1,
        s = cfg.spatial_stride.

        Latents = (posterior mean - latents_mean) / latents_std. Streams 4*chunk frames (chunk latent frames)
        at a time after the first; memory grows with `chunk`, the result does not change.
        """
        check_video(video, self.cfg)
        _check_chunk(chunk)
        return _encode(self, jnp.asarray(video), chunk)

    def decode(self, z: jax.Array, chunk: int = 1) -> jax.Array:
        """Normalised latents [B, F, h, w, z_dim] -> video [B, 4(F-1)+1, s h, s w, 3] clamped to [-1, 1].

        Streams `chunk` latent frames at a time; memory grows with `chunk`, the result does not change.
        """
        z_dim = self.cfg.z_dim
        if jnp.ndim(z) != 5 or jnp.shape(z)[-1] != z_dim:
            raise WanjaxError(f"vae.decode: latents must be [B, F, h, w, {z_dim}] (channels-last); got {jnp.shape(z)}")
        _check_chunk(chunk)
        return _decode(self, jnp.asarray(z), chunk)


def check_video(video: jax.Array, cfg: VAEConfig) -> None:
    """Shape checks for `encode`: rank 5, 3 channels last, 4k+1 frames, H and W multiples of the spatial stride."""
    shape = tuple(jnp.shape(video))
    if len(shape) != 5 or shape[-1] != 3:
        hint = " (it looks channels-first; wanjax is channels-last)" if len(shape) == 5 and shape[1] == 3 else ""
        raise WanjaxError(f"vae.encode: video must be [B, T, H, W, 3] in [-1, 1]; got {shape}{hint}")
    check_frame_count(shape[1], "vae.encode: video frames", cfg.temporal_stride)
    s = cfg.spatial_stride
    for name, size in (("height", shape[2]), ("width", shape[3])):
        if size % s or size == 0:
            lo = size // s * s
            sizes = f"{lo} or {lo + s}" if lo else f"{s}"
            raise WanjaxError(f"vae.encode: video {name}={size} is not a multiple of {s}; use {sizes}")


def _check_chunk(chunk: int) -> None:
    if not isinstance(chunk, int) or chunk < 1:
        raise WanjaxError(f"vae chunk={chunk!r}: must be an int >= 1 (latent frames per streamed chunk)")


def _latent_stats(cfg: VAEConfig) -> tuple[jax.Array, jax.Array]:
    return jnp.asarray(cfg.latents_mean, jnp.float32), jnp.asarray(cfg.latents_std, jnp.float32)


@functools.partial(nnx.jit, static_argnames="chunk")
def _encode(vae: WanVAE, video: jax.Array, chunk: int) -> jax.Array:
    cfg, s = vae.cfg, vae.cfg.temporal_stride

    def step(x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        moments, cache = vae.encoder(x, cache)
        return vae.quant_conv(moments), cache

    moments = stream(step, video.astype(cfg.dtype), first=1 + s * (chunk - 1), size=s * chunk)
    mean, std = _latent_stats(cfg)
    return (moments[..., : cfg.z_dim].astype(jnp.float32) - mean) / std


@functools.partial(nnx.jit, static_argnames="chunk")
def _decode(vae: WanVAE, z: jax.Array, chunk: int) -> jax.Array:
    mean, std = _latent_stats(vae.cfg)
    z = (z.astype(jnp.float32) * std + mean).astype(vae.cfg.dtype)
    video = stream(lambda x, c: vae.decoder(vae.post_quant_conv(x), c), z, first=chunk, size=chunk)
    return jnp.clip(video.astype(jnp.float32), -1.0, 1.0)
