"""The pixel codec of the toy models: Wan's latent layout (frame 0 alone, then 4 frames per latent frame), exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wanjax.config import VAEConfig, load_config
from wanjax.errors import WanjaxError
from wanjax.model.pixel import PixelCodec, fold, make_vae, subframe_ramp, unfold
from wanjax.model.vae import WanVAE


def test_round_trip_is_exact_and_layout_is_wans():
    codec = PixelCodec(VAEConfig.pixel())
    video = jax.random.uniform(jax.random.key(0), (2, 9, 16, 24, 3), minval=-1, maxval=1)
    z = codec.encode(video)
    assert z.shape == (2, 3, 4, 6, 192)
    np.testing.assert_array_equal(np.asarray(codec.decode(z)), np.asarray(video))
    # latent frame 1, cell (row 1, col 2), sub-frame 2, pixel (3, 0) = video frame 3, pixel (4 + 3, 8 + 0)
    cell = np.asarray(z[0, 1, 1, 2]).reshape(4, 4, 4, 3)
    np.testing.assert_array_equal(cell[2, 3, 0], np.asarray(video[0, 3, 7, 8]))
    frame0 = np.asarray(z[1, 0]).reshape(4, 6, 4, 4, 4, 3)
    for k in range(4):  # latent frame 0 holds frame 0 four times, as the causal VAE encodes it alone
        np.testing.assert_array_equal(frame0[:, :, k].transpose(0, 2, 1, 3, 4).reshape(16, 24, 3), video[1, 0])


def test_config_and_errors():
    cfg = load_config(None, ["vae.preset=pixel"]).vae
    assert (cfg.temporal_stride, cfg.spatial_stride, cfg.z_dim) == (4, 4, 192)
    assert isinstance(make_vae(cfg, None), PixelCodec)
    assert isinstance(make_vae(VAEConfig.tiny(), __import__("flax").nnx.Rngs(0)), WanVAE)
    with pytest.raises(WanjaxError, match="z_dim = 4 \\* 3 \\* pixel_size\\*\\*2 = 48"):
        load_config(None, ["vae.preset=pixel", "vae.pixel_size=2"])
    with pytest.raises(WanjaxError, match="is not 4k\\+1"):
        PixelCodec(VAEConfig.pixel()).encode(np.zeros((1, 8, 16, 16, 3), np.float32))


def test_fold_and_unfold_are_the_codec_layout():
    """fold / unfold (what the warp guide uses) are the codec's layout: sub-frames of each latent frame <-> channels."""
    video = jax.random.normal(jax.random.key(0), (2, 9, 16, 24, 3))
    z = PixelCodec(VAEConfig(kind="pixel", pixel_size=4, z_dim=192)).encode(video)
    frames = jnp.concatenate([jnp.repeat(video[:, :1], 4, axis=1), video[:, 1:]], axis=1).reshape(2, 3, 4, 16, 24, 3)
    np.testing.assert_array_equal(fold(frames, 4), z)
    np.testing.assert_array_equal(unfold(z, 4), frames)


def test_subframe_ramp_blends_alike_subframes_from_the_frame_before():
    """Sub-frames drawn alike (A_f in every sub-frame of latent frame f) become lerp(A_{f-1}, A_f, (j+1)/4); a
    clean frame before (sigma 0) lends its input x, not x0; frame 0 and every last sub-frame are kept; decoded, the
    video changes by equal steps from frame to frame instead of all at once at each latent frame."""
    rng = np.random.default_rng(0)
    levels = rng.normal(size=(1, 4, 2, 3, 1, 12)).astype(np.float32)  # A_f: [B, F, h, w, 1, C/k]
    level = levels[..., 0, :]  # [B, F, h, w, C/k]
    x0 = np.broadcast_to(levels, (1, 4, 2, 3, 4, 12)).reshape(1, 4, 2, 3, 48)
    x = rng.normal(size=x0.shape).astype(np.float32)
    out = np.asarray(subframe_ramp(jnp.asarray(x0), jnp.asarray(x), jnp.zeros((1, 4), bool))).reshape(1, 4, 2, 3, 4, 12)
    np.testing.assert_array_equal(out[:, 0], np.asarray(x0).reshape(out.shape)[:, 0])
    for f in range(1, 4):
        for j in range(4):
            expected = level[:, f - 1] + (j + 1) / 4 * (level[:, f] - level[:, f - 1])
            np.testing.assert_allclose(out[:, f, ..., j, :], expected, rtol=1e-6, atol=1e-6)
    clean = jnp.array([[True, False, True, False]])
    out = np.asarray(subframe_ramp(jnp.asarray(x0), jnp.asarray(x), clean)).reshape(1, 4, 2, 3, 4, 12)
    prev = x.reshape(1, 4, 2, 3, 4, 12)[:, 0, ..., 3, :]  # frame 0 is clean: its input's last sub-frame
    np.testing.assert_allclose(out[:, 1, ..., 0, :], prev + 0.25 * (level[:, 1] - prev), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[:, 2, ..., 3, :], level[:, 2], rtol=1e-6)
    codec = PixelCodec(VAEConfig(kind="pixel", pixel_size=2, z_dim=48))
    ramped = subframe_ramp(jnp.asarray(x0), jnp.asarray(x), jnp.zeros((1, 4), bool))
    steps = np.abs(np.diff(np.asarray(codec.decode(ramped)), axis=1)).mean(axis=(0, 2, 3, 4)).reshape(3, 4)
    np.testing.assert_allclose(steps, np.repeat(steps[:, :1], 4, axis=1), rtol=1e-5)  # 4 equal steps a latent frame
    jump = np.abs(np.diff(np.asarray(codec.decode(jnp.asarray(x0))), axis=1)).mean(axis=(0, 2, 3, 4)).reshape(3, 4)
    assert jump[:, 0].min() > 3 * steps[:, 0].max() and jump[:, 1:].max() == 0  # unramped: all at once
