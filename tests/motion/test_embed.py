"""Sparse trajectory embeddings: zero-init identity, splat precision and normalisation, static shapes (no retrace),
strength, sharding over the ring like the latent, and the sampler's motion guidance / apply_steps."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wanjax.config import Config, MeshConfig, ModelConfig, SampleConfig, TrainConfig, VAEConfig
from wanjax.data.sprites import brush_sprites
from wanjax.diffusion.samplers import guidance_weights
from wanjax.errors import WanjaxError
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.model.motion import bilinear, splat
from wanjax.model.pixel import PixelCodec
from wanjax.motion import compile_brushes
from wanjax.motion.embed import frame_groups, motion_input
from wanjax.parallel.mesh import make_mesh
from wanjax.parallel.partition import shard_module
from wanjax.sample import generate
from wanjax.train.state import init_state, optimizer
from wanjax.train.step import make_train_step, motion_batch

VAE = VAEConfig(kind="pixel", pixel_size=2, z_dim=48)  # 32 x 32 frames -> 16 x 16 latent cells
BASE = ModelConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, freq_dim=16, in_channels=48,
                   out_channels=48, motion_dim=7, first_frame_concat=True)  # fmt: skip


def _clip_inputs(seeds=(3, 5), frames=17):
    clips = [brush_sprites(s, frames, 32, 32) for s in seeds]
    video = jnp.asarray(np.stack([c["video"] for c in clips]), jnp.float32) / 127.5 - 1
    x = PixelCodec(VAE).encode(video)  # [B, (frames - 1) / 4 + 1, 16, 16, 48]
    motion = motion_input([compile_brushes(c["brushes"], max_tracks=64) for c in clips], VAE)
    return x, jax.tree.map(jnp.asarray, motion)


def _with_random_proj(dit: WanDiT, seed: int = 3) -> WanDiT:
    kernel = dit.motion_proj.kernel
    kernel.set_value(0.05 * jax.random.normal(jax.random.key(seed), kernel.get_value().shape))
    return dit


@pytest.mark.parametrize("mode", ["splat", "latent_copy"])
def test_untrained_motion_branch_changes_nothing_exactly(mode):
    x, motion = _clip_inputs()
    t, ctx = jnp.array([[0.0, 700, 700, 700, 700], [0.0, 200, 300, 400, 500]]), jnp.ones((2, 3, 24))
    plain = WanDiT(BASE, rngs=nnx.Rngs(0))(x, t, ctx)
    dit = WanDiT(dataclasses.replace(BASE, motion=mode), rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(np.asarray(dit(x, t, ctx)), np.asarray(plain))  # without tracks: Δ = 0
    np.testing.assert_array_equal(np.asarray(dit(x, t, ctx, motion)), np.asarray(plain))  # with tracks: Δ = 0
    moved = _with_random_proj(dit)(x, t, ctx, motion)  # and the branch is live once trained
    assert float(jnp.abs(moved - plain).max()) > 1e-3


def test_splat_has_sub_cell_precision_and_normalises_overlaps():
    emb = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])  # [B=1, P=2, C=2]
    for x0 in (5.0, 5.25, 5.5, 5.8):
        xy = jnp.array([[x0, 7.3], [40.0, 40.0]])[None, :, None, None]  # point 1 far outside the grid
        m = splat(emb, xy, jnp.ones((1, 2, 1, 1)), 16, 16, 0.7)[0, 0, :, :, 0]  # [h, w]: channel 0 = point 0
        w = np.asarray(m)
        cx = (w.sum(0) * np.arange(16)).sum() / w.sum()
        cy = (w.sum(1) * np.arange(16)).sum() / w.sum()
        assert abs(cx - x0) < 2e-3 and abs(cy - 7.3) < 2e-3, (x0, cx, cy)
    both = jnp.array([[[3.0, 4.0], [3.0, 4.0]]])[:, :, None, None]  # two points on one cell centre
    m = splat(emb, both, jnp.ones((1, 2, 1, 1)), 8, 8, 0.5)[0, 0, 4, 3]
    np.testing.assert_allclose(np.asarray(m), [0.5, 0.5], atol=1e-6)  # weighted mean where they overlap
    one = splat(emb[:, :1], both[:, :1], jnp.ones((1, 1, 1, 1)), 8, 8, 0.5)[0, 0]
    np.testing.assert_allclose(np.asarray(one[4, 3]), [1.0, 0.0], atol=1e-6)  # a lone point keeps its code
    assert float(jnp.abs(one[0, 7]).max()) < 1e-10  # and fades out far from it
    hidden = splat(emb, both, jnp.zeros((1, 2, 1, 1)), 8, 8, 0.5)
    assert float(jnp.abs(hidden).max()) == 0.0  # invisible points leave no trace


def test_splat_equals_the_sum_over_points_per_frame_and_sub_frame():
    rng = np.random.default_rng(0)
    B, P, F, k, h, w, C, sigma = 2, 5, 3, 4, 6, 7, 3, 0.7
    emb, xy = rng.normal(size=(B, P, C)), rng.uniform(-1, 8, (B, P, F, k, 2))
    weight = (rng.uniform(size=(B, P, F, k)) > 0.3).astype(np.float64)
    got = np.asarray(splat(*(jnp.asarray(a, jnp.float32) for a in (emb, xy, weight)), h, w, sigma))
    expect = np.zeros((B, F, h, w, k, C))
    for b, f, j in np.ndindex(B, F, k):  # one point at a time, each frame and sub-frame on its own
        gy = np.exp(-0.5 * ((np.arange(h)[:, None] - xy[b, :, f, j, 1]) / sigma) ** 2)  # [h, P]
        gx = np.exp(-0.5 * ((np.arange(w)[:, None] - xy[b, :, f, j, 0]) / sigma) ** 2) * weight[b, :, f, j]  # [w, P]
        num = np.einsum("yp,xp,pc->yxc", gy, gx, emb[b])
        expect[b, f, :, :, j] = num / np.maximum(np.einsum("yp,xp->yx", gy, gx), 1.0)[..., None]
    np.testing.assert_allclose(got, expect.reshape(B, F, h, w, k * C), atol=2e-6)


def test_bilinear_and_frame_groups():
    grid = jnp.arange(2 * 4 * 5 * 3, dtype=jnp.float32).reshape(2, 4, 5, 3)
    xy = jnp.array([[[1.0, 2.0], [2.5, 0.25]], [[4.0, 3.0], [0.0, 0.0]]])
    got = bilinear(grid, xy)
    np.testing.assert_allclose(got[0, 0], grid[0, 2, 1])
    expect = 0.75 * (grid[0, 0, 2] + grid[0, 0, 3]) / 2 + 0.25 * (grid[0, 1, 2] + grid[0, 1, 3]) / 2
    np.testing.assert_allclose(got[0, 1], expect, rtol=1e-6)
    np.testing.assert_allclose(got[1, 0], grid[1, 3, 4])
    np.testing.assert_array_equal(frame_groups(9, 4), [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]])


def test_track_count_does_not_retrace_and_vmap_matches_batch():
    dit = _with_random_proj(WanDiT(dataclasses.replace(BASE, motion="splat"), rngs=nnx.Rngs(0)))
    traces = []

    @jax.jit
    def embed(x, motion):
        traces.append(1)
        return dit.motion_embed(motion, x[:, 0])

    x, _ = _clip_inputs()
    maps = []
    for seeds in ((3, 5), (11, 4), (8, 9)):  # 1-3 sprites, with or without flow / camera: different point counts
        clips = [brush_sprites(s, 17, 32, 32) for s in seeds]
        motion = motion_input([compile_brushes(c["brushes"], max_tracks=64) for c in clips], VAE)
        maps.append(embed(x, jax.tree.map(jnp.asarray, motion)))
    assert len(traces) == 1
    motion = jax.tree.map(jnp.asarray, motion)
    one = jax.vmap(lambda m, z: dit.motion_embed(jax.tree.map(lambda a: a[None], m), z[None])[0])(motion, x[:, 0])
    np.testing.assert_allclose(np.asarray(one), np.asarray(maps[-1]), atol=1e-6)


def test_strength_scales_the_motion_contribution():
    x, motion = _clip_inputs()
    t, ctx = jnp.full((2, 5), 500.0), jnp.zeros((2, 1, 24))
    dit = _with_random_proj(WanDiT(dataclasses.replace(BASE, motion="splat"), rngs=nnx.Rngs(0)))
    base = dit(x, t, ctx)
    np.testing.assert_array_equal(np.asarray(dit(x, t, ctx, motion.replace(strength=jnp.zeros(2)))), np.asarray(base))
    half = dit(x, t, ctx, motion.replace(strength=jnp.full(2, 0.5)))
    full = dit(x, t, ctx, motion)
    assert float(jnp.abs(full - base).max()) > 1e-3 and float(jnp.abs(half - full).max()) > 1e-4
    dropped = dit(x, t, ctx, motion.dropped())  # no points: the (zero) map, not the tracks, reaches the tokens
    assert float(jnp.abs(dropped - full).max()) > 1e-3


def test_motion_map_sharded_over_the_ring_equals_unsharded():
    """Forward and one train step with brushes, fsdp 2 x ring 4, vs one device (fp32)."""
    cfg_model = dataclasses.replace(BASE, motion="splat")
    x, motion = _clip_inputs(frames=29)  # 8 latent frames: 2 per ring shard
    cond = jnp.array([[1.0] + [0.0] * 7] * 2)
    batch = {"latents": x, "context": jnp.zeros((2, 1, 24)), "cond_frames": cond}
    batch |= motion_batch(motion)
    train = TrainConfig(lr=1e-3, warmup_steps=0, steps=10, motion_dropout=0.5)
    results = []
    for mcfg in (None, MeshConfig(data=1, fsdp=2, ring=4, tensor=1)):
        mesh = None if mcfg is None else make_mesh(mcfg)
        dit = _with_random_proj(WanDiT(cfg_model, rngs=nnx.Rngs(0)))
        attn = AttnSpec() if mesh is None else AttnSpec.from_config(mcfg, mesh)
        dit = dit if mesh is None else shard_module(dit, mesh)
        out = nnx.jit(lambda m, a=attn: m(x, jnp.full((2, 8), 600.0), batch["context"], motion, attn=a))(dit)
        # (before the train step, which donates the parameters)
        cfg = Config(model=cfg_model, train=train, mesh=mcfg or MeshConfig(fsdp=1))
        tx = optimizer(train)
        graphdef, state = init_state(dit, tx, seed=0)
        state, metrics = make_train_step(graphdef, tx, cfg, mesh, state, batch)(state, batch)
        results.append((out, float(metrics["loss"]), state.params))
    (o1, l1, p1), (o8, l8, p8) = results
    assert float(jnp.abs(o8 - o1).max() / jnp.abs(o1).max()) <= 1e-5
    assert abs(l8 - l1) <= 1e-5 * abs(l1)
    k1, k8 = p1["motion_proj"]["kernel"].get_value(), p8["motion_proj"]["kernel"].get_value()
    assert float(jnp.abs(k8 - k1).max() / jnp.abs(k1).max()) <= 1e-4


def test_guidance_weights():
    assert guidance_weights(True, True, 5.0, 2.0) == [(True, True, 2.0), (True, False, 3.0), (False, False, -4.0)]
    assert guidance_weights(False, True, 5.0, 2.0) == [(False, True, 2.0), (False, False, -1.0)]
    assert guidance_weights(False, True, 5.0, 1.0) == [(False, True, 1.0)]
    assert guidance_weights(True, False, 5.0, 3.0) == [(True, False, 5.0), (False, False, -4.0)]


def _generate(dit, cfg, motion, image, **sample):
    cfg = dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, **sample))
    return generate(dit, PixelCodec(VAE), cfg, 0, jnp.zeros((2, 1, 24)), image=image, motion=motion, progress=False)


def test_sampler_keeps_the_image_and_applies_motion_guidance_and_apply_steps():
    clips = [brush_sprites(s, 17, 32, 32) for s in (3, 5)]
    image = np.stack([c["video"][0] for c in clips])
    motion = motion_input([compile_brushes(c["brushes"], max_tracks=64) for c in clips], VAE)
    dit = _with_random_proj(WanDiT(dataclasses.replace(BASE, motion="splat"), rngs=nnx.Rngs(0)), seed=5)
    cfg = Config(model=dit.cfg, vae=VAE, sample=SampleConfig(frames=17, height=32, width=32, steps=3, shift=1.0))
    frames, latents = _generate(dit, cfg, motion, image, guidance_motion=1.0)
    assert frames.shape == (2, 17, 32, 32, 3)
    assert np.abs(frames[:, 0].astype(int) - image).max() <= 1  # frame 0 is the given image (uint8 rounding)
    _, off = _generate(dit, cfg, motion.dropped(), image)
    _, never = _generate(dit, cfg, motion, image, apply_steps=(0, 0))
    np.testing.assert_array_equal(never, off)  # injected in no step == brushes dropped
    assert np.abs(latents - off).max() > 1e-3
    _, guided = _generate(dit, cfg, motion, image, guidance_motion=2.0, steps=1)
    _, on1 = _generate(dit, cfg, motion, image, steps=1)
    _, off1 = _generate(dit, cfg, motion.dropped(), image, steps=1)
    np.testing.assert_allclose(guided, 2 * on1 - off1, atol=1e-5)  # one Euler step: linear in the velocity
    _, same = _generate(dit, cfg, motion, image, guidance_motion=1.0)
    np.testing.assert_array_equal(same, latents)  # deterministic given the seed


def test_motion_is_an_error_for_a_model_without_it():
    x, motion = _clip_inputs()
    with pytest.raises(WanjaxError, match="model.motion=none"):
        WanDiT(BASE, rngs=nnx.Rngs(0))(x, jnp.zeros(2), jnp.zeros((2, 1, 24)), motion)
