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


def test_a_python_loop_over_the_blocks_is_the_scan(dit):
    """model.scan_layers=false: the same outputs, per-layer K/V and gradients as lax.scan (same weights), and no
    while loop over the blocks in the program."""
    x, ctx = _inputs(F=2)
    t = jnp.array([100.0, 900.0])
    loop = WanDiT(dataclasses.replace(CFG, scan_layers=False), rngs=nnx.Rngs(0))
    (a, (ka, va)), (b, (kb, vb)) = (m(x, t, ctx, return_kv=True) for m in (dit, loop))
    assert ka.shape[0] == CFG.num_layers and float(jnp.abs(ka[0] - ka[1]).max()) > 1e-2  # one row per layer
    for u, w in ((a, b), (ka, kb), (va, vb)):
        np.testing.assert_allclose(np.asarray(w), np.asarray(u), rtol=0, atol=1e-5)

    def grads(model):
        return nnx.grad(lambda m: jnp.sum(m(x, t, ctx) ** 2))(model)

    for u, w in zip(jax.tree.leaves(grads(dit)), jax.tree.leaves(grads(loop)), strict=True):
        assert float(jnp.abs(u - w).max()) <= 1e-5 * float(jnp.abs(u).max())
    graphdef, params = nnx.split(loop)
    jaxpr = str(jax.make_jaxpr(lambda p: nnx.merge(graphdef, p)(x, t, ctx))(params))
    assert "scan[" not in jaxpr and "while[" not in jaxpr


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
    # an accelerator mesh of several devices: blockwise on each device's tokens (ring of 1), never dense / sdpa
    assert AttnSpec.from_config(auto, make_mesh(MeshConfig(fsdp=2), jax.devices()[:2])).impl == "ring"
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert AttnSpec.from_config(auto, make_mesh(MeshConfig(fsdp=2), jax.devices()[:2])).impl == "ring"
    assert AttnSpec.from_config(auto, None).impl == "dense"


def test_brushes_on_an_image_to_video_model_read_its_image_latent():
    """A Wan2.1-I2V-shaped DiT (36 input channels: noise, mask, image latent; CLIP tokens) with a motion branch: the
    trajectory embedding samples the clean image latent (the last 16 channels of latent frame 0), not the noise;
    the untrained branch changes nothing, a trained one does."""
    from wanjax.model.motion import Motion

    cfg = ModelConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=1, text_dim=16, freq_dim=32, in_channels=36,
                      image_dim=24, added_kv_proj_dim=64, motion="splat")  # fmt: skip
    dit = WanDiT(cfg, rngs=nnx.Rngs(0))
    B, F, H, W, P = 1, 3, 4, 4, 5
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((B, F, H, W, 36)), jnp.float32)
    args = (jnp.full((B,), 500.0), jnp.asarray(rng.standard_normal((B, 3, 16)), jnp.float32))
    kw = {"image_context": jnp.asarray(rng.standard_normal((B, 5, 24)), jnp.float32)}
    motion = Motion(
        xy=jnp.asarray(rng.uniform(0, 3, (B, P, F, 4, 2)), jnp.float32), visible=jnp.ones((B, P, F, 4), bool),
        valid=jnp.ones((B, P), bool), kind=jnp.zeros((B, P), jnp.int32), brush=jnp.arange(P, dtype=jnp.int32)[None],
        strength=jnp.ones((B,), jnp.float32),
    )  # fmt: skip
    seen = []

    class Spy(nnx.Module):
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, motion, first):
            seen.append(first)
            return self.inner(motion, first)

    dit.motion_embed = Spy(dit.motion_embed)
    with_brushes = dit(x, *args, motion=motion, **kw)
    np.testing.assert_array_equal(seen[0], x[:, 0, ..., 20:])
    np.testing.assert_array_equal(with_brushes, dit(x, *args, **kw))  # zero-initialised motion_proj
    dit.motion_proj.kernel[...] = jax.random.normal(jax.random.key(1), dit.motion_proj.kernel.shape)
    assert float(jnp.abs(dit(x, *args, motion=motion, **kw) - with_brushes).max()) > 1e-3


def test_subframe_ramp_is_applied_to_the_clean_sample():
    """model.subframe_ramp (head kernel drawn): the velocity is the one implied by subframe_ramp of the same
    model's x0 without it (1e-5; frame 0 clean, and frame 1 of the second clip, the others at sigma >= 0.05); it
    moves every latent frame but 0."""
    from wanjax.model.pixel import subframe_ramp

    cfg = ModelConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=1, text_dim=8, freq_dim=16, in_channels=48,
                      out_channels=48, prediction="sample", residual="first_frame", motion_subframes=4)  # fmt: skip
    plain = WanDiT(cfg, rngs=nnx.Rngs(0))
    plain.proj_out.kernel[...] = jax.random.normal(jax.random.key(3), plain.proj_out.kernel.shape) * 0.1
    ramped = WanDiT(dataclasses.replace(cfg, subframe_ramp=True), rngs=nnx.Rngs(0))
    nnx.update(ramped, nnx.state(plain))
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 4, 48))
    t = jnp.array([[0.0, 900.0, 400.0, 60.0], [0.0, 0.0, 700.0, 200.0]])
    ctx = jnp.zeros((2, 1, 8))
    sigma = np.maximum(np.asarray(t) / 1000, 0.05)[:, :, None, None, None]
    x0 = np.asarray(x) - np.asarray(plain(x, t, ctx)) * sigma
    expected = (np.asarray(x) - np.asarray(subframe_ramp(jnp.asarray(x0), x, t == 0))) / sigma
    got = np.asarray(ramped(x, t, ctx))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    moved = np.abs(got - np.asarray(plain(x, t, ctx))).max(axis=(2, 3, 4))
    assert moved[:, 0].max() == 0 and moved[:, 1:].min() > 1e-2
    with pytest.raises(WanjaxError, match="model.subframe_ramp needs model.prediction=sample"):
        dataclasses.replace(cfg, subframe_ramp=True, prediction="velocity", residual="none").validate()
    with pytest.raises(WanjaxError, match="pixel codec"):
        dataclasses.replace(cfg, subframe_ramp=True, in_channels=16, out_channels=16).validate()
    with pytest.raises(WanjaxError, match=r"one latent frame per patch \(model.patch_size \[2, 2, 2\]\)"):
        dataclasses.replace(cfg, subframe_ramp=True, patch_size=(2, 2, 2)).validate()
