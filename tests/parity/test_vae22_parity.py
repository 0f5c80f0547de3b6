"""Wan2.2 WanVAE (residual, 2x2 patches) vs diffusers' AutoencoderKLWan: same random weights, same numbers (fp32,
tiny, non-square); streaming == one piece; the folder round trip; the real Wan2.2 VAE's parameter count."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan
from flax import nnx
from reference_models import latent_stats, random_vae, rel_err

from wanjax.config import VAEConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import flat_params
from wanjax.io.vae_params import load_vae, save_vae, vae_config_from_diffusers, vae_config_to_diffusers
from wanjax.model.vae import WanVAE
from wanjax.model.vae_residual import patchify, unpatchify

pytestmark = pytest.mark.parity

# Encoder widths 4, 8, 16, decoder widths 24, 12, 6 and z_dim 5: all distinct from each other and from the 12
# patchified channels, so a swapped layer fails on shapes. Stride 4x16x16 as Wan2.2.
Z = 5
CONFIG = {
    "base_dim": 4,
    "decoder_base_dim": 6,
    "z_dim": Z,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 1,
    "is_residual": True,
    "patch_size": 2,
    "in_channels": 12,
    "out_channels": 12,
    "scale_factor_spatial": 16,
    "latents_mean": [-0.2, 0.1, 0.3, -0.05, 0.0],
    "latents_std": [0.5, 1.2, 0.8, 0.6, 1.0],
}
# vae/config.json of Wan-AI/Wan2.2-TI2V-5B-Diffusers, less the 48 latent stats (VAEConfig.wan22 holds them) and
# "clip_output": false, a key diffusers 0.42 no longer takes (it always clamps, as we do).
WAN22 = {
    "attn_scales": [],
    "base_dim": 160,
    "decoder_base_dim": 256,
    "dim_mult": [1, 2, 4, 4],
    "dropout": 0.0,
    "in_channels": 12,
    "is_residual": True,
    "num_res_blocks": 2,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "temperal_downsample": [False, True, True],
    "z_dim": 48,
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(reference, ours loaded from its saved folder)."""
    ref = random_vae(CONFIG)
    folder = tmp_path_factory.mktemp("vae22") / "ref"
    ref.save_pretrained(folder)
    return ref, load_vae(folder)


def test_encode_matches(models):
    ref, vae = models
    video = np.random.default_rng(0).uniform(-1, 1, (2, 9, 32, 48, 3)).astype(np.float32)
    mean, std = latent_stats(ref)
    with torch.no_grad():
        posterior = ref.encode(torch.from_numpy(video).permute(0, 4, 1, 2, 3)).latent_dist.mean
    expected = ((posterior - mean) / std).permute(0, 2, 3, 4, 1).numpy()
    z = vae.encode(video)
    assert z.shape == expected.shape == (2, 3, 2, 3, Z)
    assert rel_err(z, expected) <= 1e-4


def test_decode_matches(models):
    ref, vae = models
    z = np.random.default_rng(1).standard_normal((2, 3, 2, 3, Z)).astype(np.float32)
    mean, std = latent_stats(ref)
    with torch.no_grad():
        expected = ref.decode(torch.from_numpy(z).permute(0, 4, 1, 2, 3) * std + mean).sample
    expected = expected.permute(0, 2, 3, 4, 1).numpy()
    assert np.mean(np.abs(expected) < 1) > 0.5  # mostly unclamped: the comparison is of numbers, not of +-1
    video = vae.decode(z)
    assert video.shape == expected.shape == (2, 9, 32, 48, 3)
    assert rel_err(video, expected) <= 1e-4


def test_patchify_order():
    """diffusers' channel order (width offset before height offset), and unpatchify inverts it."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import patchify as ref_patchify

    x = np.random.default_rng(3).standard_normal((1, 2, 4, 6, 3)).astype(np.float32)
    expected = ref_patchify(torch.from_numpy(x).permute(0, 4, 1, 2, 3), 2).permute(0, 2, 3, 4, 1).numpy()
    np.testing.assert_array_equal(np.asarray(patchify(x, 2)), expected)
    np.testing.assert_array_equal(np.asarray(unpatchify(patchify(x, 2), 2)), x)


def test_streaming_equals_one_piece(models):
    """33 frames = 9 latent frames: encode 2 latent frames per chunk (the last padded) and decode 1 (as the
    reference) and 2 per chunk, each against one chunk holding everything; the one piece against diffusers."""
    ref, vae = models
    video = np.random.default_rng(2).uniform(-1, 1, (1, 33, 32, 16, 3)).astype(np.float32)
    z = np.array(vae.encode(video, chunk=9))  # writable, for torch.from_numpy
    np.testing.assert_allclose(np.asarray(vae.encode(video, chunk=2)), z, rtol=0, atol=1e-5)
    out = np.asarray(vae.decode(z, chunk=9))
    assert out.shape == video.shape and np.mean(np.abs(out) < 1) > 0.5
    for chunk in (1, 2):
        np.testing.assert_allclose(np.asarray(vae.decode(z, chunk=chunk)), out, rtol=0, atol=1e-5)
    mean, std = latent_stats(ref)
    with torch.no_grad():
        expected = ref.decode(torch.from_numpy(z).permute(0, 4, 1, 2, 3) * std + mean).sample
    assert rel_err(out, expected.permute(0, 2, 3, 4, 1).numpy()) <= 1e-4


def test_save_round_trip(models, tmp_path):
    """save_vae -> diffusers loads it with no missing/unexpected keys and exactly the reference's tensors."""
    ref, vae = models
    save_vae(vae, tmp_path / "ours")
    again, info = AutoencoderKLWan.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not v for v in info.values()), info
    expected, got = ref.state_dict(), again.state_dict()
    assert got.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor), key
    assert {k: again.config[k] for k in CONFIG} == CONFIG
    assert load_vae(tmp_path / "ours").cfg == vae.cfg


def test_config_mapping(models):
    ref, vae = models
    assert vae_config_from_diffusers(dict(ref.config)) == vae.cfg
    assert vae_config_from_diffusers(vae_config_to_diffusers(vae.cfg)) == vae.cfg
    wan22 = VAEConfig.wan22()
    stats = {"latents_mean": list(wan22.latents_mean), "latents_std": list(wan22.latents_std)}
    assert vae_config_from_diffusers({**WAN22, "clip_output": False, **stats}) == wan22
    assert (wan22.spatial_stride, wan22.temporal_stride) == (16, 4)
    with pytest.raises(WanjaxError, match="in_channels=3: expected 12"):
        vae_config_from_diffusers({**ref.config, "in_channels": 3})
    with pytest.raises(WanjaxError, match=r"vae.dim_mult=\[1, 2, 3, 3\] with is_residual=True"):
        vae_config_from_diffusers({**ref.config, "dim_mult": [1, 2, 3, 3]})


def test_parameter_count():
    """The real Wan2.2 VAE: every diffusers parameter has a counterpart of the same size (counts equal)."""
    with torch.device("meta"):
        ref = AutoencoderKLWan(**WAN22)
    ours = nnx.eval_shape(lambda: WanVAE(VAEConfig.wan22(), rngs=nnx.Rngs(0)))
    n_ref = sum(p.numel() for p in ref.parameters())
    n_ours = sum(int(np.prod(p.shape)) for p in flat_params(ours).values())
    assert n_ours == n_ref
