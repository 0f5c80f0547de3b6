"""The warp guide (model.residual=warp): the first frame moved along brush tracks at pixel resolution, holes filled;
and the clean-sample residual it feeds (step 0 outputs the base exactly)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from wanjax.config import ModelConfig, VAEConfig
from wanjax.errors import WanjaxError
from wanjax.model.dit import WanDiT
from wanjax.model.guide import fill, warp_guide
from wanjax.model.pixel import PixelCodec
from wanjax.motion import compile_brushes
from wanjax.motion.embed import motion_input

VAE = VAEConfig(kind="pixel", pixel_size=4, z_dim=192)
SIZE, FRAMES = 32, 9


def _image(seed=0):
    """A smooth random grey-ish image uint8 [SIZE, SIZE, 3] with a red square at rows/columns 8..15."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:SIZE, :SIZE]
    img = 128 + 40 * np.sin(x / 3.0 + rng.uniform(0, 6)) * np.cos(y / 4.0 + rng.uniform(0, 6))
    img = np.repeat(img[..., None], 3, axis=-1)
    img[8:16, 8:16] = [220, 40, 40]
    return img.astype(np.uint8)


def _guide(brushes, image):
    spec = {"version": 1, "size": [SIZE, SIZE], "frames": FRAMES, "brushes": brushes}
    motion = jax.tree.map(jnp.asarray, motion_input([compile_brushes(spec, max_tracks=256)], VAE))
    video = jnp.asarray(image, jnp.float32)[None, None] / 127.5 - 1
    z0 = PixelCodec(VAE).encode(video)[:, 0]
    guide = warp_guide(z0, motion, 4, 4, (FRAMES - 1) // 4 + 1)
    frames = PixelCodec(VAE).decode(guide)[0]  # [T, H, W, 3]
    return np.asarray((frames + 1) * 127.5), motion


def test_camera_pan_shifts_the_whole_frame_by_whole_pixels():
    """pan (1, 0) px/frame: frame f is frame 0 moved f px right; the strip entering on the left is filled."""
    image = _image()
    frames, _ = _guide([{"mode": "camera", "pan": [1.0, 0.0], "zoom": 1.0}], image)
    for f in range(1, FRAMES):
        np.testing.assert_allclose(frames[f][:, f:], image[:, : SIZE - f], atol=1e-3)
        assert np.abs(frames[f][:, :f] - image[:, :1]).max() < 60  # filled with nearby grey, not the red square


def test_path_moves_the_region_and_fills_what_it_uncovers():
    """A path brush drags the red square 8 px right by the last frame: the square is there, and its old place
    (uncovered) is filled from the pixels around it: grey, no ghost of the square."""
    image = _image()
    brush = {"mode": "path", "mask": {"box": [7.5, 7.5, 15.5, 15.5]}, "path": [[12, 12], [20, 12]]}
    frames, _ = _guide([brush], image)
    last = frames[-1]
    np.testing.assert_allclose(last[8:16, 16:24], image[8:16, 8:16], atol=1e-3)
    chroma = np.abs(last - last.mean(axis=-1, keepdims=True))
    red = np.abs(image[8, 8] - image[8, 8].mean()).max()  # 120
    assert chroma[8:16, 8:12].max() < 0.2 * red and chroma[8:16, 8:12].mean() < 0.03 * red  # no ghost of the square
    np.testing.assert_allclose(frames[0], image, atol=1e-3)  # frame 0 is the image


def test_no_tracks_is_the_first_frame():
    image = _image()
    brush = {"mode": "path", "mask": {"box": [7.5, 7.5, 15.5, 15.5]}, "path": [[12, 12], [20, 12]]}
    frames, motion = _guide([brush], image)
    z0 = PixelCodec(VAE).encode(jnp.asarray(image, jnp.float32)[None, None] / 127.5 - 1)[:, 0]
    dropped = warp_guide(z0, motion.dropped(), 4, 4, 3)
    np.testing.assert_array_equal(dropped, warp_guide(z0, None, 4, 4, 3))
    np.testing.assert_array_equal(dropped, jnp.broadcast_to(z0[:, None], dropped.shape))


def test_fill_averages_known_pixels_only():
    video = jnp.zeros((1, 8, 8, 3)).at[:, :, :4].set(10.0).at[:, :, 4:].set(99.0)
    known = jnp.zeros((1, 8, 8), bool).at[:, :, :4].set(True)
    np.testing.assert_allclose(fill(video, known), 10.0, rtol=1e-6)


CFG = ModelConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=1, text_dim=8, freq_dim=16, in_channels=192,
                  out_channels=192, motion="splat", motion_dim=4, prediction="sample")  # fmt: skip


@pytest.mark.parametrize("residual", ["first_frame", "warp"])
def test_untrained_residual_model_outputs_its_base(residual):
    """proj_out starts at zero: x0 = base exactly (first frame, or the warp guide); velocity (x_t - base) / sigma."""
    cfg = dataclasses.replace(CFG, residual=residual)
    dit = WanDiT(cfg, rngs=nnx.Rngs(0))
    image = _image()
    brush = {"mode": "path", "mask": {"box": [7.5, 7.5, 15.5, 15.5]}, "path": [[12, 12], [20, 12]]}
    _, motion = _guide([brush], image)
    z0 = PixelCodec(VAE).encode(jnp.asarray(image, jnp.float32)[None, None] / 127.5 - 1)[:, 0]
    x = jax.random.normal(jax.random.key(1), (1, 3, 8, 8, 192)).at[:, 0].set(z0)
    t = jnp.array([[0.0, 700.0, 700.0]])
    base = warp_guide(z0, motion, 4, 4, 3) if residual == "warp" else jnp.broadcast_to(z0[:, None], x.shape)
    v = dit(x, t, jnp.zeros((1, 2, 8)), motion)
    sigma = np.maximum(np.asarray(t) / 1000, 0.05)[:, :, None, None, None]
    np.testing.assert_allclose(np.asarray(v), (np.asarray(x) - np.asarray(base)) / sigma, rtol=1e-5, atol=1e-5)
    assert residual == "first_frame" or not np.allclose(base[:, 2], z0)  # the guide moved something


def test_residual_settings_are_checked():
    with pytest.raises(WanjaxError, match="needs model.prediction=sample"):
        dataclasses.replace(CFG, residual="first_frame", prediction="velocity").validate()
    with pytest.raises(WanjaxError, match="pixel codec"):
        dataclasses.replace(CFG, residual="warp", in_channels=16, out_channels=16).validate()
    with pytest.raises(WanjaxError, match="model.residual"):
        dataclasses.replace(CFG, residual="warped").validate()
