"""WanDiT vs diffusers WanTransformer3DModel for the image-to-video families, same random weights (converted by our
converter): Wan2.1-I2V (CLIP image tokens, 36 input channels), FLF2V (two images, position table), Wan2.2 TI2V-5B
shape (48 channels, per-token timesteps with the clean first frame at 0) and A14B I2V shape (36 channels, no CLIP)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from reference_models import random_transformer, rel_err

from wanjax.config import ModelConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import read_folder
from wanjax.io.dit_params import load_dit, save_dit

pytestmark = pytest.mark.parity

BASE = ModelConfig(dim=96, ffn_dim=136, num_heads=2, num_layers=2, text_dim=20, freq_dim=32)
FAMILIES = {
    "wan2.1-i2v": dataclasses.replace(BASE, in_channels=36, image_dim=44, added_kv_proj_dim=96),
    "wan2.1-flf2v": dataclasses.replace(BASE, in_channels=36, image_dim=44, added_kv_proj_dim=96, pos_embed_seq_len=14),
    "wan2.2-ti2v": dataclasses.replace(BASE, in_channels=48, out_channels=48),
    "wan2.2-i2v-a14b": dataclasses.replace(BASE, in_channels=36),
}
B, F, H, W = 2, 3, 4, 6
TEXT = 512  # diffusers' cross-attention takes the last 512 context tokens as text, the rest as image tokens
IMAGE_TOKENS = 7  # per image


def _reference(cfg: ModelConfig, folder):
    ref = random_transformer(cfg)
    ref.save_pretrained(folder)
    return ref


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    cfg = FAMILIES[request.param]
    folder = tmp_path_factory.mktemp(request.param) / "transformer"
    return request.param, cfg, _reference(cfg, folder), folder


def _inputs(cfg: ModelConfig, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, F, H, W, cfg.in_channels)).astype(np.float32)
    ctx = rng.standard_normal((B, TEXT, cfg.text_dim)).astype(np.float32)
    image = None
    if cfg.image_dim is not None:
        count = IMAGE_TOKENS * (2 if cfg.pos_embed_seq_len else 1)
        image = rng.standard_normal((B, count, cfg.image_dim)).astype(np.float32)
    return x, ctx, image


def _ref_forward(ref, x, t, ctx, image):
    with torch.no_grad():
        image = None if image is None else torch.from_numpy(image)
        if image is not None and ref.config.pos_embed_seq_len:  # the pipeline hands the two images as [2B, I/2, ...]
            image = image.reshape(-1, image.shape[1] // 2, image.shape[2])
        out = ref(torch.from_numpy(x.transpose(0, 4, 1, 2, 3)), torch.from_numpy(t), torch.from_numpy(ctx),
                  encoder_hidden_states_image=image).sample  # fmt: skip
    return out.numpy().transpose(0, 2, 3, 4, 1)


def test_forward_matches_diffusers(family):
    name, cfg, ref, folder = family
    dit = load_dit(folder)
    assert dit.cfg == cfg
    x, ctx, image = _inputs(cfg)
    if name == "wan2.2-ti2v":  # the TI2V pipeline's per-token timesteps: 0 on the clean first frame, t elsewhere
        t = np.array([[0, 700, 700], [0, 35, 35]], np.float32)
        t_ref = np.repeat(t, (H // 2) * (W // 2), axis=1)
    else:
        t = t_ref = np.array([37.0, 912.0], np.float32)
    kw = {} if image is None else {"image_context": jnp.asarray(image)}
    ours = dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx), **kw)
    assert ours.shape == (B, F, H, W, cfg.out_channels)
    assert rel_err(ours, _ref_forward(ref, x, t_ref, ctx, image)) <= 1e-4
    if image is not None:  # the image tokens matter: other tokens, another output
        other = dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx), image_context=jnp.asarray(image[::-1]))
        assert rel_err(other, ours) > 1e-2


def test_round_trip_loads_in_diffusers_with_no_missing_keys(family, tmp_path):
    _, _, ref, folder = family
    save_dit(load_dit(folder), tmp_path / "out")
    _, written = read_folder(tmp_path / "out")
    assert {k: v.shape for k, v in written.items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def test_image_context_errors():
    dit = load_dit_like(FAMILIES["wan2.1-i2v"])
    x, ctx, image = _inputs(FAMILIES["wan2.1-i2v"])
    with pytest.raises(WanjaxError, match="pass image_context"):
        dit(jnp.asarray(x), jnp.zeros(B), jnp.asarray(ctx))
    t2v = load_dit_like(BASE)
    with pytest.raises(WanjaxError, match="no image branch"):
        t2v(jnp.asarray(x[..., :16]), jnp.zeros(B), jnp.asarray(ctx), image_context=jnp.asarray(image))
    with pytest.raises(WanjaxError, match="added_kv_proj_dim"):
        dataclasses.replace(BASE, image_dim=44).validate()


def load_dit_like(cfg: ModelConfig):
    from wanjax.model.dit import WanDiT

    return WanDiT(cfg, rngs=nnx.Rngs(0))
