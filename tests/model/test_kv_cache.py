"""The DiT's self-attention K/V cache (pyramid sampling) equals recomputation under the causal mask."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from wanjax.config import ModelConfig
from wanjax.errors import WanjaxError
from wanjax.model.attention import attention
from wanjax.model.dit import AttnSpec, WanDiT

MODEL = ModelConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=2, text_dim=16, freq_dim=16)
CAUSAL = AttnSpec(mask="causal", segment_frames=2)


def _inputs():
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], (2, 6, 4, 4, MODEL.in_channels))
    t = jax.random.uniform(k[1], (2, 6)) * 1000
    return x, t, jax.random.normal(k[2], (2, 3, MODEL.text_dim))


def _rel(a, b) -> float:
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


def test_cached_segments_equal_recomputation():
    """Frames 0-1 then 2-3 cached, 4-5 computed against the cache: each part equals the one causal forward over
    all 6 frames (fp32, ≤ 1e-5 relative), and the cached K/V equal the full forward's."""
    dit = WanDiT(MODEL, rngs=nnx.Rngs(0))
    x, t, ctx = _inputs()
    full, full_kv = dit(x, t, ctx, attn=CAUSAL, return_kv=True)
    assert full_kv[0].shape == (2, 2, 6 * 4, 2, 16)  # [layers, B, L, N, K]: patch 2x2 -> 4 tokens a frame
    out0, kv0 = dit(x[:, :2], t[:, :2], ctx, attn=CAUSAL, return_kv=True)
    out1, kv1 = dit(x[:, 2:4], t[:, 2:4], ctx, attn=CAUSAL, kv_cache=(*kv0, 2), return_kv=True)
    cache = tuple(jnp.concatenate([a, b], axis=2) for a, b in zip(kv0, kv1, strict=True))
    out2 = dit(x[:, 4:], t[:, 4:], ctx, attn=CAUSAL, kv_cache=(*cache, 4))
    for part, ref in ((out0, full[:, :2]), (out1, full[:, 2:4]), (out2, full[:, 4:])):
        assert _rel(part, ref) <= 1e-5
    for got, ref in zip(cache, full_kv, strict=True):
        assert _rel(got, ref[:, :, : 4 * 4]) <= 1e-5
    # The cache matters: without it the last segment sees only itself.
    assert _rel(dit(x[:, 4:], t[:, 4:], ctx, attn=CAUSAL, frame_offset=4), full[:, 4:]) > 1e-2


def test_cached_first_frame_residual_equals_recomputation():
    """model.residual=first_frame (head kernel drawn, not zero): a later segment computed against the cache, given
    the clip's latent frame 0, equals the full causal forward (fp32, ≤ 1e-5 relative); with its own first frame
    as the base instead it does not."""
    cfg = dataclasses.replace(MODEL, prediction="sample", residual="first_frame")
    dit = WanDiT(cfg, rngs=nnx.Rngs(0))
    dit.proj_out.kernel[...] = jax.random.normal(jax.random.key(3), dit.proj_out.kernel.shape) * 0.1
    x, t, ctx = _inputs()
    full = dit(x, t, ctx, attn=CAUSAL)
    _, kv = dit(x[:, :4], t[:, :4], ctx, attn=CAUSAL, return_kv=True)
    out = dit(x[:, 4:], t[:, 4:], ctx, attn=CAUSAL, kv_cache=(*kv, 4), first_frame=x[:, :1])
    assert _rel(out, full[:, 4:]) <= 1e-5
    own = dit(x[:, 4:], t[:, 4:], ctx, attn=CAUSAL, kv_cache=(*kv, 4), first_frame=x[:, 4:5])
    assert _rel(own, full[:, 4:]) > 1e-2
    with pytest.raises(WanjaxError, match="pass first_frame"):
        dit(x[:, 4:], t[:, 4:], ctx, attn=CAUSAL, kv_cache=(*kv, 4))


def test_cache_errors():
    q = jnp.ones((1, 8, 2, 4))
    with pytest.raises(WanjaxError, match="K/V cache runs impl='dense'"):
        attention(q, q, q, tokens_per_frame=4, impl="blockwise", cache=(q, q, 2))
    cfg = dataclasses.replace(MODEL, first_frame_concat=True)
    dit = WanDiT(cfg, rngs=nnx.Rngs(0))
    x, t, ctx = _inputs()
    kv = (jnp.zeros((2, 2, 4, 2, 16)),) * 2 + (1,)
    with pytest.raises(WanjaxError, match="first_frame_concat"):
        dit(x, t, ctx, attn=CAUSAL, kv_cache=kv)
