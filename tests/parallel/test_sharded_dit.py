"""The whole DiT sharded over 8 fake devices equals the unsharded run: forward and one optimizer step."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from wanjax.config import Config, MeshConfig, ModelConfig, TrainConfig
from wanjax.errors import WanjaxError
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.parallel.mesh import make_mesh
from wanjax.parallel.partition import shard_module
from wanjax.train.state import init_state, optimizer
from wanjax.train.step import make_train_step

MODEL = ModelConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, freq_dim=16)
TRAIN = TrainConfig(lr=1e-3, warmup_steps=0, steps=10, grad_clip=1.0, ema_decay=0.9, per_segment_prob=0.5)
B, F, H, W = 2, 8, 4, 6
MESHES = {
    "ring8": MeshConfig(data=1, fsdp=1, ring=8, tensor=1),
    "fsdp2-ring4": MeshConfig(data=1, fsdp=2, ring=4, tensor=1),
    "data2-ring2-tensor2": MeshConfig(data=2, fsdp=1, ring=2, tensor=2),
}


def _batch(frames=F):
    k = jax.random.split(jax.random.key(7), 2)
    return {
        "latents": jax.random.normal(k[0], (B, frames, H, W, 16)),
        "context": jax.random.normal(k[1], (B, 3, MODEL.text_dim)),
    }


def _rel(a, b):
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


@pytest.fixture(scope="module")
def unsharded():
    dit = WanDiT(MODEL, rngs=nnx.Rngs(0))
    batch = _batch()
    t = jnp.array([[900.0] * 4 + [300.0] * 4, [50.0] * 8])
    out = dit(batch["latents"], t, batch["context"])
    cfg = Config(model=MODEL, train=TRAIN, mesh=MeshConfig(fsdp=1))
    tx = optimizer(TRAIN)
    graphdef, state = init_state(dit, tx, seed=0)
    state, metrics = make_train_step(graphdef, tx, cfg, None, state, batch)(state, batch)
    return t, out, state, metrics


@pytest.mark.parametrize("name", list(MESHES))
def test_sharded_forward_and_step_equal_unsharded(name, unsharded):
    t, out_ref, state_ref, metrics_ref = unsharded
    mcfg = MESHES[name]
    mesh = make_mesh(mcfg)
    dit = WanDiT(MODEL, rngs=nnx.Rngs(0))
    batch = _batch()
    attn = AttnSpec.from_config(mcfg, mesh)
    assert attn.impl == "ring", attn
    graphdef, params = nnx.split(shard_module(dit, mesh))
    forward = jax.jit(lambda p, x, t, c: nnx.merge(graphdef, p)(x, t, c, attn=attn))
    assert _rel(forward(params, batch["latents"], t, batch["context"]), out_ref) <= 1e-5

    cfg = Config(model=MODEL, train=TRAIN, mesh=mcfg)
    tx = optimizer(TRAIN)
    graphdef, state = init_state(dit, tx, seed=0)
    state, metrics = make_train_step(graphdef, tx, cfg, mesh, state, batch)(state, batch)
    assert abs(float(metrics["loss"]) - float(metrics_ref["loss"])) <= 1e-5 * abs(float(metrics_ref["loss"]))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(state_ref.params), strict=True):
        assert _rel(a, b) <= 1e-4
    leaf = state.params["blocks"]["attn1"]["to_q"]["kernel"].get_value()
    assert leaf.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")


def test_a_frame_count_the_ring_does_not_divide_trains_like_unsharded():
    """5 latent frames on a ring of 4 (Sprites60's 241 on a ring of 8): the step equals the one-device step."""
    batch = _batch(frames=5)
    cfg = Config(model=MODEL, train=TRAIN, mesh=MeshConfig(data=1, fsdp=2, ring=4, tensor=1))
    tx = optimizer(TRAIN)
    results = []
    for mesh in (None, make_mesh(cfg.mesh)):
        graphdef, state = init_state(WanDiT(MODEL, rngs=nnx.Rngs(0)), tx, seed=0)
        results.append(make_train_step(graphdef, tx, cfg, mesh, state, batch)(state, batch))
    (ref, ref_metrics), (state, metrics) = results
    assert abs(float(metrics["loss"]) - float(ref_metrics["loss"])) <= 1e-5 * abs(float(ref_metrics["loss"]))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref.params), strict=True):
        assert _rel(a, b) <= 1e-4


def test_heads_not_divisible_by_tensor_is_a_clear_error():
    mcfg = MeshConfig(data=1, fsdp=1, ring=2, tensor=4)
    mesh = make_mesh(mcfg)
    dit = WanDiT(MODEL, rngs=nnx.Rngs(0))
    with pytest.raises(WanjaxError, match="model.num_heads=2 is not divisible by the mesh axes tensor = 4"):
        dit(
            jnp.zeros((B, F, H, W, 16)),
            jnp.zeros(B),
            jnp.zeros((B, 3, MODEL.text_dim)),
            attn=AttnSpec.from_config(mcfg, mesh),
        )
