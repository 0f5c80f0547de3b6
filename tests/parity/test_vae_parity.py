"""WanVAE vs diffusers' AutoencoderKLWan: same random weights in, same numbers out (fp32, tiny, non-square)."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan
from reference_models import latent_stats, random_vae, rel_err

from wanjax.errors import WanjaxError
from wanjax.io.vae_params import load_vae, save_vae, vae_config_from_diffusers, vae_config_to_diffusers

pytestmark = pytest.mark.parity

# Widths 6, 12, 18 (distinct, so a swapped layer fails on shapes); z_dim 16 so the Wan latent stats apply.
CONFIG = {"base_dim": 6, "z_dim": 16, "dim_mult": [1, 2, 3, 3], "num_res_blocks": 1}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(reference, its saved folder, ours loaded from that folder)."""
    ref = random_vae(CONFIG)
    folder = tmp_path_factory.mktemp("vae") / "ref"
    ref.save_pretrained(folder)
    return ref, folder, load_vae(folder)


def test_encode_matches(models):
    ref, _, vae = models
    video = np.random.default_rng(0).uniform(-1, 1, (2, 9, 32, 48, 3)).astype(np.float32)
    mean, std = latent_stats(ref)
    with torch.no_grad():
        posterior = ref.encode(torch.from_numpy(video).permute(0, 4, 1, 2, 3)).latent_dist.mean
    expected = ((posterior - mean) / std).permute(0, 2, 3, 4, 1).numpy()
    z = vae.encode(video)
    assert z.shape == expected.shape == (2, 3, 4, 6, 16)
    assert rel_err(z, expected) <= 1e-4


def test_decode_matches(models):
    ref, _, vae = models
    z = np.random.default_rng(1).standard_normal((2, 3, 4, 6, 16)).astype(np.float32)
    mean, std = latent_stats(ref)
    with torch.no_grad():
        expected = ref.decode(torch.from_numpy(z).permute(0, 4, 1, 2, 3) * std + mean).sample
    expected = expected.permute(0, 2, 3, 4, 1).numpy()
    assert np.mean(np.abs(expected) < 1) > 0.5  # mostly unclamped: the comparison is of numbers, not of +-1
    video = vae.decode(z)
    assert video.shape == expected.shape == (2, 9, 32, 48, 3)
    assert rel_err(video, expected) <= 1e-4


def test_save_round_trip(models, tmp_path):
    """save_vae -> diffusers loads it with no missing/unexpected keys and exactly the reference's tensors."""
    ref, _, vae = models
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
    ref, _, vae = models
    assert vae_config_from_diffusers(dict(ref.config)) == vae.cfg
    assert vae_config_from_diffusers(vae_config_to_diffusers(vae.cfg)) == vae.cfg
    with pytest.raises(WanjaxError, match="is_residual=True"):
        vae_config_from_diffusers({**ref.config, "is_residual": True})
