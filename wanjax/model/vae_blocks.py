"""Blocks of the Wan causal 3D VAE (diffusers `autoencoder_kl_wan.py`), channels-last, with a functional cache.

Every causal layer is `layer(x, cache) -> (y, cache)` on a chunk of frames x [B, T, H, W, C]. `cache` is a
pytree of arrays (the last input frames each causal conv saw) or None at the start of the video, so a video
can be streamed chunk by chunk — the cache carried between chunks — with the same numbers as one piece.
Attribute names follow diffusers' modules, which keeps the checkpoint table in io/vae_params.py short.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.model.attention import attention

CACHE_T = 2  # frames of history a (3, kh, kw) causal conv needs: its causal padding


def conv3d(
    x: jax.Array, kernel: jax.Array, bias: jax.Array, stride: tuple[int, int, int], pad: tuple[tuple[int, int], ...]
) -> jax.Array:
    """x [B, T, H, W, I], kernel [kt, kh, kw, I, O] -> [B, T', H', W', O]. `pad` = (lo, hi) for H and W only:
    time is 'valid', causal layers prepend their history themselves."""
    dims = ("NDHWC", "DHWIO", "NDHWC")
    y = jax.lax.conv_general_dilated(x, kernel, stride, ((0, 0), *pad), dimension_numbers=dims)
    return y + bias


def with_history(x: jax.Array, cache: jax.Array | None, frames: int) -> tuple[jax.Array, jax.Array]:
    """Prepend the stream's previous `frames` frames to x [B, T, H, W, C] -> ([B, frames + T, H, W, C], new cache).

    cache [B, frames, H, W, C]; None at the start of the video, where the history is the causal zero padding.
    """
    if cache is None:
        cache = jnp.zeros((x.shape[0], frames, *x.shape[2:]), x.dtype)
    x = jnp.concatenate([cache, x], axis=1)
    return x, x[:, -frames:]


def rms_norm(x: jax.Array, gamma: jax.Array) -> jax.Array:
    """WanRMS_norm: x [..., C] L2-normalised over channels (F.normalize, eps on the norm), times sqrt(C) * gamma."""
    x32 = x.astype(jnp.float32)
    norm = jnp.sqrt(jnp.sum(jnp.square(x32), axis=-1, keepdims=True))
    return (x32 / jnp.maximum(norm, 1e-12) * x.shape[-1] ** 0.5 * gamma).astype(x.dtype)


def upsample2x(x: jax.Array) -> jax.Array:
    """Nearest 2x over H and W (torch 'nearest-exact' at factor 2). [B, T, H, W, C] -> [B, T, 2H, 2W, C]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


def pass_first_frame(step: Callable, x: jax.Array, history: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The video's first frame skips a temporal resampler (the reference never convolves it); the rest of the
    chunk x [B, T, ...] runs `step(rest, history)`."""
    head, rest = x[:, :1], x[:, 1:]
    if rest.shape[1] == 0:
        return head, history
    y, cache = step(rest, history)
    return jnp.concatenate([head, y], axis=1), cache


def run_causal(layers: list, x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
    """Apply causal layers `layer(x, cache) -> (x, cache)` in order; cache: one entry per layer, or None."""
    caches = []
    for layer, c in zip(layers, cache or (None,) * len(layers), strict=True):
        x, c = layer(x, c)
        caches.append(c)
    return x, tuple(caches)


class Conv(nnx.Module):
    """Convolution with kernel [*window, I, O]: a 3-D window, or a 2-D one applied to each frame."""

    def __init__(
        self,
        cin: int,
        cout: int,
        window: tuple[int, ...],
        *,
        stride: tuple[int, int, int] = (1, 1, 1),
        pad: tuple[tuple[int, int], tuple[int, int]] | None = None,
        dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (*window, cin, cout)))
        self.bias = nnx.Param(jnp.zeros((cout,)))
        self.stride, self.dtype = stride, dtype
        self.pad = pad if pad is not None else tuple((k // 2, k // 2) for k in window[-2:])

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...].astype(self.dtype)
        kernel = kernel if kernel.ndim == 5 else kernel[None]
        return conv3d(x.astype(self.dtype), kernel, self.bias[...].astype(self.dtype), self.stride, self.pad)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int):
        self.gamma = nnx.Param(jnp.ones((dim,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return rms_norm(x, self.gamma[...])


def causal_conv(conv: Conv, x: jax.Array, cache: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """A causal (3, kh, kw) conv with CACHE_T frames of history. x [B, T, H, W, C] -> ([B, T, H, W, O], cache)."""
    h, cache = with_history(x, cache, CACHE_T)
    return conv(h), cache


def norm_act_conv(norm: RMSNorm, conv: Conv, x: jax.Array, cache: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """RMS norm, SiLU, then a causal (3, 3, 3) conv. x [B, T, H, W, C] -> ([B, T, H, W, O], cache)."""
    return causal_conv(conv, jax.nn.silu(norm(x)), cache)


class ResidualBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.norm1, self.norm2 = RMSNorm(cin), RMSNorm(cout)
        self.conv1 = Conv(cin, cout, (3, 3, 3), dtype=dtype, rngs=rngs)
        self.conv2 = Conv(cout, cout, (3, 3, 3), dtype=dtype, rngs=rngs)
        self.conv_shortcut = Conv(cin, cout, (1, 1, 1), dtype=dtype, rngs=rngs) if cin != cout else None

    def __call__(self, x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        """x [B, T, H, W, I] -> ([B, T, H, W, O], cache)."""
        c1, c2 = cache or (None, None)
        h, c1 = norm_act_conv(self.norm1, self.conv1, x, c1)
        h, c2 = norm_act_conv(self.norm2, self.conv2, h, c2)
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h, (c1, c2)


class AttentionBlock(nnx.Module):
    """Single-head self-attention over the pixels of each frame (no time mixing, so no cache)."""

    def __init__(self, dim: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.norm = RMSNorm(dim)
        self.to_qkv = Conv(dim, 3 * dim, (1, 1), dtype=dtype, rngs=rngs)
        self.proj = Conv(dim, dim, (1, 1), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [B, T, H, W, C] -> [B, T, H, W, C]."""
        B, T, H, W, C = x.shape
        qkv = self.to_qkv(self.norm(x)).reshape(B * T, H * W, 3, 1, C)
        y = attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], tokens_per_frame=H * W)
        return x + self.proj(y.reshape(B, T, H, W, C))


class MidBlock(nnx.Module):
    def __init__(self, dim: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.resnets = nnx.List([ResidualBlock(dim, dim, dtype=dtype, rngs=rngs) for _ in range(2)])
        self.attentions = nnx.List([AttentionBlock(dim, dtype=dtype, rngs=rngs)])

    def __call__(self, x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        c0, c1 = cache or (None, None)
        x, c0 = self.resnets[0](x, c0)
        x, c1 = self.resnets[1](self.attentions[0](x), c1)
        return x, (c0, c1)


class Resample(nnx.Module):
    """Spatial 2x (conv after nearest upsampling / strided conv) and, in the 3-D modes, temporal 2x."""

    def __init__(self, dim: int, mode: str, *, out_dim: int | None = None, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.mode = mode
        temporal = mode.endswith("3d")
        if mode.startswith("up"):
            # Wan2.1's upsamplers halve the width; Wan2.2's residual up blocks keep it (out_dim = dim).
            self.resample = Conv(dim, out_dim or dim // 2, (3, 3), dtype=dtype, rngs=rngs)
            # Two output frames per input frame, stacked along channels.
            self.time_conv = Conv(dim, 2 * dim, (3, 1, 1), dtype=dtype, rngs=rngs) if temporal else None
        else:
            # Pad right/bottom only (ZeroPad2d((0, 1, 0, 1))) before the stride-2 conv.
            self.resample = Conv(dim, dim, (3, 3), stride=(1, 2, 2), pad=((0, 1), (0, 1)), dtype=dtype, rngs=rngs)
            self.time_conv = Conv(dim, dim, (3, 1, 1), stride=(2, 1, 1), dtype=dtype, rngs=rngs) if temporal else None

    def __call__(self, x: jax.Array, cache: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
        """x [B, T, H, W, C] -> up: [B, T', 2H, 2W, C/2]; down: [B, T', H/2, W/2, C]; T' = T, ~2T or ~T/2."""
        if self.mode == "upsample3d":
            x, cache = self._first_up(x) if cache is None else self._double_frames(x, cache)
        if self.mode.startswith("up"):
            return self.resample(upsample2x(x)), cache
        x = self.resample(x)
        if self.mode == "downsample3d":
            x, cache = self._first_down(x) if cache is None else self._halve_frames(x, cache)
        return x, cache

    def _first_up(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        # The reference's 'Rep' cache: frame 0 is not doubled and is not history for frame 1 (zeros are).
        return pass_first_frame(self._double_frames, x, jnp.zeros((x.shape[0], CACHE_T, *x.shape[2:]), x.dtype))

    def _first_down(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        # Frame 0 passes through and is the history of frame 1.
        return pass_first_frame(self._halve_frames, x, x[:, :1])

    def _double_frames(self, x: jax.Array, cache: jax.Array) -> tuple[jax.Array, jax.Array]:
        """[B, T, H, W, C] -> [B, 2T, H, W, C]: a causal (3, 1, 1) conv to 2C channels = frames 2t, 2t+1."""
        y, cache = causal_conv(self.time_conv, x, cache)
        B, T, H, W, _ = y.shape
        return y.reshape(B, T, H, W, 2, -1).transpose(0, 1, 4, 2, 3, 5).reshape(B, 2 * T, H, W, -1), cache

    def _halve_frames(self, x: jax.Array, cache: jax.Array) -> tuple[jax.Array, jax.Array]:
        """[B, 2T, H, W, C] -> [B, T, H, W, C]: output t sees frames 2t-1, 2t, 2t+1 (one frame of history)."""
        h, cache = with_history(x, cache, 1)
        return self.time_conv(h), cache


def resnet_stack(cin: int, cout: int, n: int, *, dtype: jnp.dtype, rngs: nnx.Rngs) -> nnx.List:
    """n residual blocks, cin -> cout then cout -> cout."""
    return nnx.List([ResidualBlock(cin if j == 0 else cout, cout, dtype=dtype, rngs=rngs) for j in range(n)])


class UpBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, num_res_blocks: int, mode: str | None, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.resnets = resnet_stack(cin, cout, num_res_blocks + 1, dtype=dtype, rngs=rngs)
        self.upsamplers = nnx.List([Resample(cout, mode, dtype=dtype, rngs=rngs)] if mode else [])

    def __call__(self, x: jax.Array, cache: tuple | None) -> tuple[jax.Array, tuple]:
        return run_causal([*self.resnets, *self.upsamplers], x, cache)
