"""WanDiT vs diffusers WanTransformer3DModel with the same random weights (converted by our converter)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import WanTransformer3DModel
from flax import nnx
from reference_models import random_transformer, rel_err

from wanjax.config import PRESETS, ModelConfig
from wanjax.io.convert import flat_params, read_folder
from wanjax.io.dit_params import load_dit, model_config_to_diffusers, save_dit
from wanjax.model.dit import WanDiT

pytestmark = pytest.mark.parity

# Distinct small sizes so a transposed or mixed-up axis fails loudly.
CFG = ModelConfig(dim=128, ffn_dim=208, num_heads=2, num_layers=2, text_dim=36, freq_dim=32)
B, F, H, W, M = 2, 5, 6, 10, 7


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A diffusers model with every parameter random (norm scales too), saved to a folder."""
    ref = random_transformer(CFG)
    folder = tmp_path_factory.mktemp("dit") / "transformer"
    ref.save_pretrained(folder)
    return ref, folder


def _inputs(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, F, H, W, 16)).astype(np.float32)
    ctx = rng.standard_normal((B, M, CFG.text_dim)).astype(np.float32)
    return x, ctx


def _ref_forward(ref, x, t, ctx):
    with torch.no_grad():
        out = ref(torch.from_numpy(x.transpose(0, 4, 1, 2, 3)), torch.from_numpy(t), torch.from_numpy(ctx)).sample
    return out.numpy().transpose(0, 2, 3, 4, 1)


def test_forward_matches_diffusers(reference):
    ref, folder = reference
    dit = load_dit(folder)
    x, ctx = _inputs()
    t = np.array([37.0, 912.0], np.float32)  # a different timestep per sample
    ours = dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx))
    assert rel_err(ours, _ref_forward(ref, x, t, ctx)) <= 1e-4


def test_per_frame_timesteps_match_diffusers_per_token(reference):
    """t [B, F] equals the reference given the same timestep repeated over each frame's tokens."""
    ref, folder = reference
    dit = load_dit(folder)
    x, ctx = _inputs(2)
    t = np.array([[0, 100, 300, 600, 999], [999, 500, 20, 20, 0]], np.float32)
    ours = dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx))
    t_tokens = np.repeat(t, (H // 2) * (W // 2), axis=1)
    assert rel_err(ours, _ref_forward(ref, x, t_tokens, ctx)) <= 1e-4


def test_round_trip_loads_in_diffusers_with_no_missing_keys(reference, tmp_path):
    ref, folder = reference
    save_dit(load_dit(folder), tmp_path / "out", shard_bytes=200_000)  # force several shards + index json
    assert (tmp_path / "out" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    _, written = read_folder(tmp_path / "out")
    assert {k: v.shape for k, v in written.items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    back = WanTransformer3DModel.from_pretrained(tmp_path / "out")
    for (name, a), b in zip(ref.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# The real shapes' counts (diffusers 0.42.1, meta device), stated so that a changed preset fails loudly.
COUNTS = {
    "wan2.1-t2v-1.3b": 1_418_996_800,
    "wan2.1-t2v-14b": 14_288_491_584,  # also each expert of Wan2.2-T2V-A14B
    "wan2.1-i2v-14b-480p": 16_394_878_784,
    "wan2.1-flf2v-14b-720p": 16_395_536_704,
    "wan2.2-ti2v-5b": 4_999_787_712,
    "wan2.2-t2v-a14b": 14_288_491_584,
    "wan2.2-i2v-a14b": 14_288_901_184,  # each of the two experts
}


@pytest.mark.parametrize("preset", sorted(COUNTS))
def test_real_configs_have_the_reference_parameter_count(preset):
    """nnx.eval_shape of our preset counts the parameters of diffusers' model built on the meta device."""
    cfg = PRESETS["model"][preset]()
    abstract = nnx.eval_shape(lambda: WanDiT(cfg, rngs=nnx.Rngs(0)))
    ours = sum(int(np.prod(v.shape)) for v in flat_params(abstract).values())
    kwargs = {k: v for k, v in model_config_to_diffusers(cfg).items() if not k.startswith("_")}
    with torch.device("meta"):
        theirs = sum(p.numel() for p in WanTransformer3DModel(**kwargs).parameters())
    assert ours == theirs == COUNTS[preset]


def test_config_round_trips_through_diffusers_json():
    from wanjax.io.dit_params import model_config_from_diffusers

    assert model_config_from_diffusers(model_config_to_diffusers(CFG)) == dataclasses.replace(CFG)
