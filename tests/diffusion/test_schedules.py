"""Sigma matrices of the three schedules, chained windows, and generate() over them: a 60-s clip (241 latent
frames) sampled as one sequence on a ring of 8 fake devices equals the unsharded run."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wanjax.config import config_from_dict, with_sample
from wanjax.diffusion.flow import sampling_sigmas
from wanjax.diffusion.schedules import attention_mask, chained_windows, pyramid, pyramid_windows, synchronous
from wanjax.errors import WanjaxError
from wanjax.model.dit import WanDiT
from wanjax.model.pixel import make_vae
from wanjax.parallel.mesh import make_mesh
from wanjax.sample import generate


def test_synchronous_and_pyramid_matrices():
    base = sampling_sigmas(6, 3.0)
    np.testing.assert_array_equal(synchronous(6, 3.0, 5), np.repeat(base[:, None], 5, axis=1))
    p = pyramid(6, 3.0, frames=7, segment_frames=3, lag=2)  # segments {0,1,2} {3,4,5} {6}
    assert p.shape == (6 + 2 * 2 + 1, 7)
    for frame, segment in enumerate([0, 0, 0, 1, 1, 1, 2]):
        column = p[:, frame]
        lead = segment * 2
        np.testing.assert_array_equal(column[: lead + 1], 1.0)  # waits at pure noise until its turn
        np.testing.assert_array_equal(column[lead : lead + 7], base)  # then the same schedule
        np.testing.assert_array_equal(column[lead + 6 :], 0.0)  # and stays clean
    assert np.all(np.diff(p, axis=0) <= 0)
    # Each row, later segments are at least as noisy: what causal attention lets a segment see is cleaner.
    assert np.all(np.diff(p, axis=1) >= 0)
    np.testing.assert_array_equal(pyramid(6, 3.0, 7, 3, lag=0), synchronous(6, 3.0, 7))
    with pytest.raises(WanjaxError, match="lag=-1"):
        pyramid(6, 3.0, 7, 3, lag=-1)


def test_chained_windows():
    assert chained_windows(12, 5, 2) == [(0, 5), (3, 8), (6, 11), (9, 12)]
    assert chained_windows(5, 21, 5) == [(0, 5)]
    windows = chained_windows(241, 21, 5)
    assert windows[0] == (0, 21) and windows[-1][1] == 241
    assert all(b[0] == a[1] - 5 for a, b in zip(windows, windows[1:], strict=False))
    with pytest.raises(WanjaxError, match="sample.overlap=21"):
        chained_windows(40, 21, 21)
    assert [attention_mask(s) for s in ("synchronous", "pyramid", "chained")] == ["full", "causal", "full"]
    with pytest.raises(WanjaxError, match="sample.schedule='stacked'"):
        attention_mask("stacked")


def _cfg(frames: int, model: dict | None = None, **sample) -> tuple:
    cfg = config_from_dict(
        {
            "model": {"dim": 32, "ffn_dim": 64, "num_heads": 2, "num_layers": 1, "text_dim": 16, "freq_dim": 16,
                      "in_channels": 48, "out_channels": 48, **(model or {})},
            "vae": {"kind": "pixel", "pixel_size": 2, "z_dim": 48},
            "mesh": {"data": 1, "fsdp": 1, "ring": 8, "tensor": 1, "segment_frames": sample.pop("segment_frames", 1)},
            "sample": {"frames": frames, "height": 8, "width": 8, "steps": 2, "solver": "euler", "shift": 3.0,
                       "guidance_text": 1.0, **sample},
        }
    )  # fmt: skip
    return cfg, WanDiT(cfg.model, rngs=nnx.Rngs(0)), make_vae(cfg.vae, nnx.Rngs(1))


RESIDUAL = {"prediction": "sample", "residual": "first_frame"}
RAMP = RESIDUAL | {"subframe_ramp": True}


def _draw_head(dit) -> None:
    """A drawn (not zero) clean-sample head, so that the residual base, the ramp and the attention all count."""
    dit.proj_out.kernel[...] = jnp.asarray(np.random.default_rng(3).normal(0, 0.1, dit.proj_out.kernel.shape))


def _generate(cfg, dit, vae, mesh=None, image=None):
    context = jnp.zeros((1, 1, cfg.model.text_dim))
    return generate(dit, vae, cfg, 0, context, image=image, mesh=mesh, progress=False)


@pytest.mark.parametrize(
    "schedule, model",
    [
        (dict(schedule="synchronous"), None),
        (dict(schedule="pyramid", lag=1, segment_frames=31), None),
        (dict(schedule="pyramid", lag=1, segment_frames=31), RAMP),
    ],
    ids=["synchronous", "pyramid", "pyramid-subframe_ramp"],
)
def test_60_seconds_as_one_sequence_on_a_ring_of_8(schedule, model):
    """961 video frames = 241 latent frames (964 tokens) in one sequence, frames sharded over ring=8: the same
    latents as the unsharded dense run (fp32, ≤ 1e-4 relative); also with the sub-frame ramp, which reads each
    latent frame's neighbour across the shards."""
    cfg, dit, vae = _cfg(961, model, **schedule)
    if model:
        _draw_head(dit)
    frames, ref = _generate(cfg, dit, vae)
    assert frames.shape == (1, 961, 8, 8, 3) and ref.shape == (1, 241, 4, 4, 48)
    _, out = _generate(cfg, dit, vae, mesh=make_mesh(cfg.mesh))
    assert np.abs(out - ref).max() / np.abs(ref).max() <= 1e-4


def test_sampled_segments_reach_ring_attention():
    """A model trained in segments of 8 sampled the pyramid way in segments of 31 (sample.segment_frames) on a ring
    of 8: the latents of one device sampling a model whose mesh.segment_frames is 31 (fp32, ≤ 1e-4 relative)."""
    sample = dict(schedule="pyramid", lag=1)
    cfg, dit, vae = _cfg(961, segment_frames=8, **sample)
    cfg = with_sample(cfg, {"segment_frames": 31})
    _, ref = _generate(_cfg(961, segment_frames=31, **sample)[0], dit, vae)
    _, out = _generate(cfg, dit, vae, mesh=make_mesh(cfg.mesh))
    assert np.abs(out - ref).max() / np.abs(ref).max() <= 1e-4


def test_schedules_agree_where_they_must():
    """A pyramid of one segment is the synchronous schedule (its causal mask hides nothing); a chained window as
    long as the clip is too (bitwise); chained windows keep the image frame exactly and do change the result."""
    cfg, dit, vae = _cfg(33)  # 9 latent frames
    image = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    _, sync = _generate(cfg, dit, vae, image=image)
    one_segment = _cfg(33, segment_frames=9, schedule="pyramid", lag=3)[0]
    np.testing.assert_allclose(_generate(one_segment, dit, vae, image=image)[1], sync, rtol=0, atol=1e-6)
    one_window = _cfg(33, schedule="chained", window=9, overlap=2)[0]
    np.testing.assert_array_equal(_generate(one_window, dit, vae, image=image)[1], sync)
    chained = _cfg(33, schedule="chained", window=4, overlap=2)[0]  # windows (0,4) (2,6) (4,8) (6,9)
    _, lat = _generate(chained, dit, vae, image=image)
    first = vae.encode(jnp.asarray(image, jnp.float32)[:, None] / 127.5 - 1.0)
    np.testing.assert_array_equal(lat[0, 0], first[0, 0])
    assert np.abs(lat - sync).max() > 1e-3  # chaining is a different sampler, not a no-op
    with pytest.raises(WanjaxError, match="chained windows restart"):
        generate(dit, vae, chained, 0, jnp.zeros((1, 1, 16)), image=image, motion=object(), progress=False)


def test_pyramid_windows():
    sigmas = pyramid(4, 1.0, frames=8, segment_frames=2, lag=2)  # 4 segments, each moves for 4 steps
    starts, length = pyramid_windows(sigmas, 2)
    assert length == 6  # two moving segments at a time + the finished one before them
    assert starts.tolist() == [0, 0, 0, 0, 0, 0, 2, 2, 2, 2]
    for i, lo in enumerate(starts):
        moving = np.flatnonzero(sigmas[i + 1] != sigmas[i])
        assert lo <= moving.min() and moving.max() < lo + length  # every moving frame is computed


@pytest.mark.parametrize(
    "solver, model",
    [("euler", None), ("unipc", None), ("unipc", RESIDUAL), ("unipc", RAMP)],
    ids=["euler", "unipc", "residual", "subframe_ramp"],
)
def test_kv_cached_pyramid_equals_recomputed(solver, model):
    """Pyramid sampling reading finished segments from the K/V cache == recomputing the whole clip every step
    (fp32, ≤ 1e-5 relative), image-to-video, with and without text guidance branches; also for a first-frame
    residual model (Sprites60's; head kernel drawn, so the base and the attention both count), also with the
    sub-frame ramp (a window's first frame has no frame before it in the window: it is a finished one)."""
    sample = dict(schedule="pyramid", lag=1, segment_frames=2, solver=solver, steps=3)
    cfg, dit, vae = _cfg(33, model, **sample)  # 9 latent frames: 5 segments, rows 3 + 4
    if model:
        _draw_head(dit)
    image = np.random.default_rng(1).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    starts, length = pyramid_windows(pyramid(3, 3.0, 9, 2, 1), 2)
    assert length < 9  # the cached run does skip frames
    recomputed = _generate(_cfg(33, model, kv_cache=False, **sample)[0], dit, vae, image=image)[1]
    cached = _generate(cfg, dit, vae, image=image)[1]
    assert np.abs(cached - recomputed).max() / np.abs(recomputed).max() <= 1e-5
    text = jnp.asarray(np.random.default_rng(2).normal(size=(1, 2, 16)), jnp.float32)
    guided = [
        generate(
            dit, vae, _cfg(33, model, kv_cache=k, guidance_text=3.0, **sample)[0], 0, text, image=image, progress=False
        )
        for k in (False, True)
    ]
    assert np.abs(guided[1][1] - guided[0][1]).max() / np.abs(guided[0][1]).max() <= 1e-5


@pytest.mark.parametrize("kv_cache", [False, True], ids=["recomputed", "kv_cache"])
def test_sample_segment_frames_replace_the_trained_ones_when_sampling(kv_cache):
    """sample.segment_frames=2 on a model whose mesh.segment_frames is 4 samples the pyramid (stagger, causal mask
    and K/V windows) exactly as mesh.segment_frames=2 does (≤ 1e-6), and not as 4 does; below 1 is an error."""
    sample = dict(schedule="pyramid", lag=1, steps=3, kv_cache=kv_cache)
    trained, dit, vae = _cfg(33, RESIDUAL, segment_frames=4, **sample)  # 9 latent frames
    _draw_head(dit)
    image = np.random.default_rng(1).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    shorter = with_sample(trained, {"segment_frames": 2})
    assert shorter.sample_segment_frames == 2 and trained.sample_segment_frames == 4
    _, out = _generate(shorter, dit, vae, image=image)
    _, ref = _generate(_cfg(33, RESIDUAL, segment_frames=2, **sample)[0], dit, vae, image=image)
    _, as_trained = _generate(trained, dit, vae, image=image)
    scale = np.abs(ref).max()
    assert np.abs(out - ref).max() / scale <= 1e-6
    assert np.abs(out - as_trained).max() / scale > 1e-2
    with pytest.raises(WanjaxError, match="sample.segment_frames=0"):
        config_from_dict({"sample": {"segment_frames": 0}})


@pytest.mark.parametrize("schedule", ["synchronous", "chained", "pyramid"])
def test_a_second_video_compiles_nothing(schedule, caplog):
    """Another seed and another (non-zero) context with the same shapes reuse every compiled program, chained
    windows share one, and so does the K/V-cached pyramid; the context is an argument, so the second video still
    differs."""
    import logging

    import jax

    cfg, dit, vae = _cfg(17, schedule=schedule, window=3, overlap=1, guidance_text=2.0)
    contexts = [jnp.full((1, 1, cfg.model.text_dim), c) for c in (0.5, -0.5)]
    first = generate(dit, vae, cfg, 0, contexts[0], progress=False)[1]
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        second = generate(dit, vae, cfg, 1, contexts[1], progress=False)[1]
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Finished XLA compilation")]
    assert compiled == [], compiled
    assert np.abs(second - first).max() > 1e-3
