"""WanDiT properties that need no reference: per-frame timesteps, shapes, clear errors, remat equivalence."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wanjax.config import MeshConfig, ModelConfig
from wanjax.errors import WanjaxError
from wanjax.model.dit import AttnSpec, WanDiT, patchify, unpatchify
from wanjax.parallel.mesh import make_mesh

CFG = ModelConfig(dim=96, ffn_dim=160, num_heads=2, num_layers=2, text_dim=40, freq_dim=32)


@pytest.fixture(scope="module")
def dit():
    return WanDiT(CFG, rngs=nnx.Rngs(0))


def _inputs(F=3, H=4, W=6, B=2, M=5):
    k = jax.random.split(jax.random.key(0), 2)
    return jax.random.normal(k[0], (B, F, H, W, 16)), jax.random.normal(k[1], (B, M, CFG.text_dim))


def test_per_frame_timesteps_all_equal_is_exactly_scalar_timesteps(dit):
    x, ctx = _inputs()
    t = jnp.array([250.0, 731.0])
    scalar = dit(x, t, ctx)
    per_frame = dit(x, jnp.broadcast_to(t[:, None], (2, 3)), ctx)
    assert scalar.shape == x.shape
    np.testing.assert_array_equal(np.asarray(per_frame), np.asarray(scalar))


def test_a_per_frame_timestep_is_used(dit):
    """Changing frame 2's timestep changes the output (a real per-frame input, not ignored)."""
    x, ctx = _inputs()
    t = jnp.array([[500.0, 500.0, 500.0], [500.0, 500.0, 500.0]])
    a = dit(x, t, ctx)
    b = dit(x, t.at[:, 2].set(10.0), ctx)
    assert float(jnp.abs(a - b)[:, 2].max()) > 1e-3


def test_patchify_round_trip():
    x = jax.random.normal(jax.random.key(1), (2, 3, 4, 6, 16))
    tokens, grid = patchify(x, (1, 2, 2), 16)
    assert tokens.shape == (2, 3 * 2 * 3, 64) and grid == (3, 2, 3)
    np.testing.assert_array_equal(np.asarray(unpatchify(tokens, grid, (1, 2, 2), 16)), np.asarray(x))


@pytest.mark.parametrize(
    ("remat", "impl"), [("full", "dense"), ("dots", "dense"), ("none", "flash"), ("dots", "flash")]
)
def test_remat_and_flash_give_the_same_gradients(dit, remat, impl):
    x, ctx = _inputs(F=2)
    t = jnp.array([100.0, 900.0])
    model = WanDiT(dataclasses.replace(CFG, remat=remat), rngs=nnx.Rngs(0))

    def grads(model, impl):
        return nnx.grad(lambda m: jnp.sum(m(x, t, ctx, attn=AttnSpec(impl=impl)) ** 2))(model)

    g0, g1 = jax.tree.leaves(grads(dit, "dense")), jax.tree.leaves(grads(model, impl))
    for a, b in zip(g0, g1, strict=True):  # same math, different fusion: equal up to fp32 reassociation
        assert float(jnp.abs(a - b).max()) <= 1e-5 * float(jnp.abs(b).max())


@pytest.mark.parametrize(("impl", "primitive"), [("flash", "cond["), ("ring", "ppermute")])
def test_remat_dots_keeps_attention_residuals(impl, primitive):
    """remat='dots' saves flash / ring attention's output and log-sum-exp: backward does not run attention's
    forward again. Counted in the gradient program: as many of the forward's `lax.cond` (flash's two softmax
    paths) or ring steps (`ppermute`) as without remat; rerunning the forward would add its own."""
    x, ctx = _inputs(F=8, B=1)
    mesh = make_mesh(MeshConfig(fsdp=1, ring=4), jax.devices()[:4]) if impl == "ring" else None
    attn = AttnSpec(impl=impl, mesh=mesh)

    def count(remat):
        graphdef, params = nnx.split(WanDiT(dataclasses.replace(CFG, remat=remat), rngs=nnx.Rngs(0)))
        loss = lambda p: jnp.sum(nnx.merge(graphdef, p)(x, jnp.array([1.0]), ctx, attn=attn) ** 2)  # noqa: E731
        return str(jax.make_jaxpr(jax.grad(loss))(params)).count(primitive)

    assert count("dots") == count("none") > 0
    assert count("full") > count("none")  # the check can see a rerun forward


@pytest.mark.parametrize(
    "shape, match",
    [((2, 3, 5, 6, 16), "latent height 5 is not divisible by the patch size 2; use 4 or 6"),
     ((2, 3, 4, 7, 16), "latent width 7"),
     ((2, 3, 4, 6, 8), r"expected \[B, F, H, W, 16\]")],
)  # fmt: skip
def test_bad_latent_shapes_are_clear_errors(dit, shape, match):
    with pytest.raises(WanjaxError, match=match):
        dit(jnp.zeros(shape), jnp.zeros(2), jnp.zeros((2, 5, CFG.text_dim)))


def test_bad_timestep_shape_is_a_clear_error(dit):
    x, ctx = _inputs()
    with pytest.raises(WanjaxError, match=r"timesteps have shape \(2, 4\)"):
        dit(x, jnp.zeros((2, 4)), ctx)


def test_sample_prediction_returns_the_implied_velocity(dit):
    """prediction=sample: proj_out gives x0 and the DiT returns (x_t - x0) / max(sigma, 0.05), the velocity."""
    x, ctx = _inputs()
    t = jnp.array([[0.0, 20.0, 600.0], [1000.0, 300.0, 49.0]])
    x0 = dit(x, t, ctx)  # same weights, raw head output
    v = WanDiT(dataclasses.replace(CFG, prediction="sample"), rngs=nnx.Rngs(0))(x, t, ctx)
    sigma = np.maximum(np.asarray(t) / 1000, 0.05)[:, :, None, None, None]
    np.testing.assert_allclose(np.asarray(v), (np.asarray(x) - np.asarray(x0)) / sigma, rtol=1e-5, atol=1e-5)


def test_auto_attention_per_backend_mesh_and_mask(monkeypatch):
    auto = MeshConfig()
    assert AttnSpec.from_config(auto, None).impl == "flash"
    assert AttnSpec.from_config(auto, None, mask="causal").impl == "blockwise"
    assert AttnSpec.from_config(auto, make_mesh(MeshConfig(fsdp=1, ring=2), jax.devices()[:2])).impl == "ring"
    assert AttnSpec.from_config(auto, make_mesh(MeshConfig(fsdp=2), jax.devices()[:2])).impl == "dense"
    assert AttnSpec.from_config(MeshConfig(attention="blockwise"), None).impl == "blockwise"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert AttnSpec.from_config(auto, None).impl == "sdpa"
    assert AttnSpec.from_config(auto, None, mask="causal").impl == "dense"
