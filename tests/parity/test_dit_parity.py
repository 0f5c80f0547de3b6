"""WanDiT vs diffusers WanTransformer3DModel with the same random weights (converted by our converter)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import WanTransformer3DModel
from flax import nnx

from wanjax.config import ModelConfig
from wanjax.io.convert import flat_params, read_folder
from wanjax.io.dit_params import load_dit, model_config_to_diffusers, save_dit
from wanjax.model.dit import WanDiT

pytestmark = pytest.mark.parity

# Distinct small sizes so a transposed or mixed-up axis fails loudly.
CFG = ModelConfig(dim=128, ffn_dim=208, num_heads=2, num_layers=2, text_dim=36, freq_dim=32)
B, F, H, W, M = 2, 5, 6, 10, 7


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A diffusers model with every parameter random (norm scales too), saved to a folder."""
    torch.manual_seed(0)
    kwargs = {k: v for k, v in model_config_to_diffusers(CFG).items() if not k.startswith("_")}
    ref = WanTransformer3DModel(**kwargs).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
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
    assert _rel(ours, _ref_forward(ref, x, t, ctx)) <= 1e-4


def test_per_frame_timesteps_match_diffusers_per_token(reference):
    """t [B, F] equals the reference given the same timestep repeated over each frame's tokens."""
    ref, folder = reference
    dit = load_dit(folder)
    x, ctx = _inputs(2)
    t = np.array([[0, 100, 300, 600, 999], [999, 500, 20, 20, 0]], np.float32)
    ours = dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx))
    t_tokens = np.repeat(t, (H // 2) * (W // 2), axis=1)
    assert _rel(ours, _ref_forward(ref, x, t_tokens, ctx)) <= 1e-4


def test_round_trip_loads_in_diffusers_with_no_missing_keys(reference, tmp_path):
    ref, folder = reference
    save_dit(load_dit(folder), tmp_path / "out", shard_bytes=200_000)  # force several shards + index json
    assert (tmp_path / "out" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    _, written = read_folder(tmp_path / "out")
    assert {k: v.shape for k, v in written.items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    back = WanTransformer3DModel.from_pretrained(tmp_path / "out")
    for (name, a), b in zip(ref.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("preset", ["wan21_t2v_1_3b", "wan21_t2v_14b"])
def test_real_configs_have_the_reference_parameter_count(preset):
    cfg = getattr(ModelConfig, preset)()
    abstract = nnx.eval_shape(lambda: WanDiT(cfg, rngs=nnx.Rngs(0)))
    ours = sum(int(np.prod(v.shape)) for v in flat_params(abstract).values())
    kwargs = {k: v for k, v in model_config_to_diffusers(cfg).items() if not k.startswith("_")}
    with torch.device("meta"):
        theirs = sum(p.numel() for p in WanTransformer3DModel(**kwargs).parameters())
    assert ours == theirs
    expected = {"wan21_t2v_1_3b": 1_418_996_800, "wan21_t2v_14b": 14_288_491_584}[preset]
    assert ours == expected


def test_config_round_trips_through_diffusers_json():
    from wanjax.io.dit_params import model_config_from_diffusers

    assert model_config_from_diffusers(model_config_to_diffusers(CFG)) == dataclasses.replace(CFG)
