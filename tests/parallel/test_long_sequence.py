"""A 241-latent-frame sequence (60 s at 16 fps after the VAE's 4× time compression, + the anchor frame)
through a tiny DiT sharded over a ring of 8 fake devices, against the unsharded dense forward.

241 is prime, so no ring > 1 splits it into whole segments (check_ring). Under a causal or window
mask padding the end is exact: the 7 padded frames (241 -> 248 = 8 × 31) come after every real frame,
so no real query can see them, and every other layer (adaLN, RoPE, cross-attention, FFN) is per token
or per frame. A full mask has no such escape: padded keys would be visible, and attention has no key
mask, so there the test covers the closest even length, 240 frames.
"""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from wanjax.config import MeshConfig, ModelConfig
from wanjax.errors import WanjaxError
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.parallel.mesh import make_mesh
from wanjax.parallel.partition import shard_module

MODEL = ModelConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=1, text_dim=16, freq_dim=16)
MESH = MeshConfig(data=1, fsdp=1, ring=8, tensor=1)
FRAMES, RING = 241, 8
H = W = 4  # patch (1, 2, 2): 4 tokens per latent frame, 964 tokens in all


def _inputs(frames: int):
    k = jax.random.split(jax.random.key(3), 2)
    x = jax.random.normal(k[0], (1, frames, H, W, MODEL.in_channels))
    return x, jnp.array([500.0]), jax.random.normal(k[1], (1, 3, MODEL.text_dim))


def _rel(a, b) -> float:
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


def _ring_forward(x, t, context, **mask):
    mesh = make_mesh(MESH)
    attn = AttnSpec.from_config(MESH, mesh, **mask)
    assert attn.impl == "ring", attn
    graphdef, params = nnx.split(shard_module(WanDiT(MODEL, rngs=nnx.Rngs(0)), mesh))
    return jax.jit(lambda p, x, t, c: nnx.merge(graphdef, p)(x, t, c, attn=attn))(params, x, t, context)


@pytest.mark.parametrize("mask", [dict(mask="causal"), dict(mask="window", window=16, sink_frames=1)])
def test_241_frames_padded_to_the_ring_equal_unsharded(mask):
    x, t, context = _inputs(FRAMES)
    ref = WanDiT(MODEL, rngs=nnx.Rngs(0))(x, t, context, attn=AttnSpec(**mask))
    pad = -FRAMES % RING
    padded = jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0), (0, 0)))
    out = _ring_forward(padded, t, context, **mask)
    assert out.shape[1] == FRAMES + pad == 248
    assert _rel(out[:, :FRAMES], ref) <= 1e-5


def test_240_frames_full_mask_equal_unsharded():
    x, t, context = _inputs(FRAMES - 1)
    ref = WanDiT(MODEL, rngs=nnx.Rngs(0))(x, t, context)
    assert _rel(_ring_forward(x, t, context), ref) <= 1e-5


def test_241_frames_unpadded_is_a_clear_error():
    with pytest.raises(WanjaxError, match="mesh.ring=8 does not divide the 241 attention segments"):
        _ring_forward(*_inputs(FRAMES), mask="causal")
