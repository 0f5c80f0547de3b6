"""WanVAE: shapes, streaming over time chunks == one piece, and user-facing errors (tiny config, CPU)."""

import numpy as np
import pytest
from flax import nnx

from wanjax.config import VAEConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import flat_params, load_flat_params
from wanjax.model.vae import WanVAE

B, T, H, W = 2, 33, 16, 24  # 33 frames -> 9 latent frames; non-square


@pytest.fixture(scope="module")
def vae():
    """Random weights, gammas and biases. Filled from numpy: nnx's random init compiles one RNG kernel per
    parameter shape, seconds of the test budget on 2 cores."""
    vae = nnx.eval_shape(lambda: WanVAE(VAEConfig.tiny(), rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(0)
    params = {}
    for path, p in flat_params(vae).items():
        if path.endswith("kernel"):
            params[path] = rng.normal(0, np.prod(p.shape[:-1]) ** -0.5, p.shape)
        else:
            params[path] = rng.uniform(0.5, 1.5, p.shape) if path.endswith("gamma") else rng.normal(0, 0.1, p.shape)
    load_flat_params(vae, params)
    return vae


@pytest.fixture(scope="module")
def video():
    return np.random.default_rng(0).uniform(-1, 1, (B, T, H, W, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def one_piece(vae, video):
    """(latents, decoded video), each in a single chunk."""
    z = vae.encode(video, chunk=9)
    return z, vae.decode(z, chunk=9)


def test_shapes(vae, one_piece):
    z, out = one_piece
    assert z.shape == (B, 9, H // 8, W // 8, 16)
    assert out.shape == (B, T, H, W, 3)
    assert np.isfinite(np.asarray(z)).all()
    out = np.asarray(out)
    assert out.min() >= -1 and out.max() <= 1
    assert np.mean(np.abs(out) < 1) > 0.5  # mostly unclamped, so the comparisons below compare numbers


@pytest.mark.parametrize("chunk", [2])  # 2: the scanned chunks do not divide the rest, so the last is padded
def test_streaming_encode_equals_one_piece(vae, video, one_piece, chunk):
    z = np.asarray(vae.encode(video, chunk=chunk))
    np.testing.assert_allclose(z, np.asarray(one_piece[0]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 2])  # 1: frame by frame, as the reference; 2: padded last chunk
def test_streaming_decode_equals_one_piece(vae, one_piece, chunk):
    z, out = one_piece
    np.testing.assert_allclose(np.asarray(vae.decode(z, chunk=chunk)), np.asarray(out), rtol=0, atol=1e-5)


def test_causal_in_time(vae, video, one_piece):
    """Latent frame 0 sees only video frame 0; decoded frame 0 only latent frame 0."""
    z, out = one_piece
    np.testing.assert_allclose(np.asarray(vae.encode(video[:, :1])), np.asarray(z[:, :1]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(vae.decode(z[:, :1])), np.asarray(out[:, :1]), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 8, 16, 16, 3), "frames=8 is not 4k+1; use 5 or 9"),
        ((1, 5, 20, 16, 3), "height=20 is not a multiple of 8; use 16 or 24"),
        ((1, 5, 16, 4, 3), "width=4 is not a multiple of 8; use 8"),
        ((1, 5, 16, 16, 4), "must be [B, T, H, W, 3]"),
        ((1, 3, 5, 16, 16), "channels-first"),
        ((5, 16, 16, 3), "must be [B, T, H, W, 3]"),
    ],
)
def test_encode_errors(vae, shape, message):
    with pytest.raises(WanjaxError) as e:
        vae.encode(np.zeros(shape, np.float32))
    assert message in str(e.value)


def test_decode_and_config_errors(vae):
    with pytest.raises(WanjaxError, match=r"latents must be \[B, F, h, w, 16\]"):
        vae.decode(np.zeros((1, 2, 2, 2, 4), np.float32))
    with pytest.raises(WanjaxError, match="chunk=0"):
        vae.decode(np.zeros((1, 2, 2, 2, 16), np.float32), chunk=0)
    with pytest.raises(WanjaxError, match="attn_scales"):
        WanVAE(VAEConfig(base_dim=4, attn_scales=(0.25,)), rngs=nnx.Rngs(0))


def test_wan22_shapes_and_errors():
    """Wan2.2: 2x2 patches make the spatial stride 16; residual widths must regroup (numbers: tests/parity)."""
    vae = nnx.eval_shape(lambda: WanVAE(VAEConfig.wan22(), rngs=nnx.Rngs(0)))
    with pytest.raises(WanjaxError, match="height=24 is not a multiple of 16; use 16 or 32"):
        vae.encode(np.zeros((1, 5, 24, 32, 3), np.float32))
    with pytest.raises(WanjaxError, match=r"latents must be \[B, F, h, w, 48\]"):
        vae.decode(np.zeros((1, 2, 2, 2, 16), np.float32))
    with pytest.raises(WanjaxError, match="vae.patch_size=0"):
        VAEConfig(patch_size=0).validate()
    with pytest.raises(WanjaxError, match=r"vae.dim_mult=\[1, 2, 3, 3\] with is_residual=True: stage 2"):
        VAEConfig(base_dim=6, dim_mult=(1, 2, 3, 3), is_residual=True).validate()
