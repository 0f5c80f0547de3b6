"""The AOT memory table (wanjax.bench.memory) at toy size: the same code path as the 14B table (the real train step
compiled from abstract shapes on a fake FSDP mesh, here the 8 test devices, with mesh.attention=ring)."""

import jax
import jax.numpy as jnp

from wanjax.bench.memory import BASE, markdown, rows, table
from wanjax.parallel.ring import blockwise_attention

# A tiny Wan2.1-I2V: condition channels, CLIP image branch; 17 frames at 128 x 128 (5 latent frames of 8 x 8 tokens)
TINY = [
    "model.dim=64", "model.ffn_dim=128", "model.num_heads=2", "model.num_layers=2", "model.text_dim=32",
    "model.freq_dim=32", "model.image_dim=16", "model.added_kv_proj_dim=64", "vae.preset=tiny",
    "sample.frames=17", "sample.height=128", "sample.width=128",
]  # fmt: skip
MESH = {"fsdp8": ["mesh.fsdp=8", "mesh.ring=1"]}  # fsdp x ring compiles ~30 % slower


def test_memory_table_at_toy_size():
    wanted = ("full/remat=none", "full/remat=full", "lora64/remat=full")
    # rank 4: rank 64 would outweigh a 64-wide toy model's weights
    named = {
        k: [*v, "train.lora_rank=4"] if "lora" in k else v
        for k, v in rows(MESH).items()
        if k.endswith(wanted) and "bf16" not in k
    }
    # optimisation level 0: compiles ~40 % faster on CPU; the toy step's buffer sizes are the same as at the default
    fast = {"xla_backend_optimization_level": 0}
    results = {r["row"].split("/", 1)[1]: r for r in table(BASE, named, TINY, log=lambda _: None, options=fast)}
    assert set(results) == set(wanted)
    for r in results.values():
        assert r["mesh"] == {"data": 1, "fsdp": 8, "ring": 1, "tensor": 1} and r["batch"] == 8
        assert r["latents"] == [5, 16, 16, 16]
        size = r["bytes"]
        assert min(size.values()) > 0
        assert size["total"] == size["argument"] + size["output"] - size["alias"] + size["temp"]
    full, none, lora = results["full/remat=full"], results["full/remat=none"], results["lora64/remat=full"]
    assert full["bytes"]["temp"] < none["bytes"]["temp"]
    # LoRA: the base weights frozen (no EMA, no Adam moments), so far less state per device
    assert lora["trained_params"] < full["trained_params"] / 2 and lora["frozen_params"] > 0
    assert lora["bytes"]["argument"] < full["bytes"]["argument"]
    table_md = markdown(list(results.values()))
    assert table_md.count("\n") == 4 and "fsdp8/lora64/remat=full" in table_md


def test_scanned_attention_backward_is_linear_in_tokens():
    """The DiT's scan over layers must not hoist the tile masks out of blockwise attention: the tile loops would then
    stack every tile pair's mask, O(L²) (here 16 x 16 pairs of [512, 512] masks, 335 MB; at 14B 480p, 214 GB)."""
    L = 8192

    def layer(h, w):
        q = h @ w
        return h + blockwise_attention(q, q, q, tokens_per_frame=L // 16, block_size=512), None

    def loss(h, ws):
        return jax.lax.scan(layer, h, ws)[0].sum()

    h, ws = jax.ShapeDtypeStruct((1, L, 1, 8), jnp.float32), jax.ShapeDtypeStruct((2, 8, 8), jnp.float32)
    temp = jax.jit(jax.grad(loss, (0, 1))).lower(h, ws).compile().memory_analysis().temp_size_in_bytes
    assert temp < 20e6, temp  # q, k, v, out and their grads, for 2 layers: ~3 MB
