"""A 241-latent-frame sequence (60 s at 16 fps after the VAE's 4× time compression, + the anchor frame)
through a tiny DiT sharded over a ring of 8 fake devices, against the unsharded dense forward.

241 is prime, so no ring > 1 splits it into whole segments: ring attention pads it at the end to 248
frames and hides the padded keys (which matters under the full mask, where every query could see them);
the other layers' activation constraints over 241 frames are sharded unevenly by XLA.
"""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from wanjax.config import MeshConfig, ModelConfig
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.parallel.mesh import make_mesh
from wanjax.parallel.partition import shard_module

MODEL = ModelConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=1, text_dim=16, freq_dim=16)
MESH = MeshConfig(data=1, fsdp=1, ring=8, tensor=1)
FRAMES = 241
MASKS = [dict(mask="full"), dict(mask="causal"), dict(mask="window", window=16, sink_frames=1)]
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


@pytest.mark.parametrize("mask", MASKS, ids=lambda m: m["mask"])
def test_241_frames_over_a_ring_of_8_equal_unsharded(mask):
    x, t, context = _inputs(FRAMES)
    ref = WanDiT(MODEL, rngs=nnx.Rngs(0))(x, t, context, attn=AttnSpec(**mask))
    out = _ring_forward(x, t, context, **mask)
    assert out.shape == ref.shape
    assert _rel(out, ref) <= 1e-5
