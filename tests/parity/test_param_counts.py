"""Parameter counts of the real Wan DiT shapes: `nnx.eval_shape` of our presets equals diffusers'
WanTransformer3DModel built on the meta device (no memory spent on either side)."""

import jax
import pytest
import torch
from diffusers import WanTransformer3DModel
from flax import nnx

from wanjax.config import PRESETS
from wanjax.io.dit_params import model_config_to_diffusers
from wanjax.model.dit import WanDiT

pytestmark = pytest.mark.parity

# Measured 2026-12-06 from diffusers 0.42.1 (meta device); stated here so a changed preset fails loudly.
COUNTS = {
    "wan2.1-t2v-1.3b": 1_418_996_800,
    "wan2.1-i2v-14b-480p": 16_394_878_784,
    "wan2.1-flf2v-14b-720p": 16_395_536_704,
    "wan2.2-ti2v-5b": 4_999_787_712,
    "wan2.2-t2v-a14b": 14_288_491_584,  # each of the two experts
    "wan2.2-i2v-a14b": 14_288_901_184,  # each of the two experts
}


def _ours(cfg) -> int:
    model = nnx.eval_shape(lambda: WanDiT(cfg, rngs=nnx.Rngs(0)))
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _reference(cfg) -> int:
    kwargs = {k: v for k, v in model_config_to_diffusers(cfg).items() if not k.startswith("_")}
    with torch.device("meta"):
        return sum(p.numel() for p in WanTransformer3DModel(**kwargs).parameters())


@pytest.mark.parametrize("preset", sorted(COUNTS))
def test_parameter_count_matches_diffusers(preset):
    cfg = PRESETS["model"][preset]()
    assert _ours(cfg) == _reference(cfg) == COUNTS[preset]
