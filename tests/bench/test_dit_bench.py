"""The DiT benchmark (wanjax.bench.dit) at a tiny shape."""

import pytest

from wanjax.bench import dit
from wanjax.config import ModelConfig
from wanjax.model.flops import dit_flops

pytestmark = pytest.mark.parity  # builds diffusers' WanTransformer3DModel

CFG = ModelConfig(dim=96, ffn_dim=160, num_heads=2, num_layers=2, text_dim=40, freq_dim=32)
SHAPE, M = (3, 6, 10), 7  # latent (F, H, W): 3 * 3 * 5 = 45 tokens; 7 text tokens


def test_run_times_both_sides_on_the_same_weights():
    rows = dit.run(shapes=(SHAPE,), repeats=1, cfg=CFG, text_tokens=M, matmul_n=256, pause=0.0)
    (row,) = rows
    assert row["tokens"] == 45 and row["latent"] == [1, 16, *SHAPE] and row["attention"] == "flash"
    for key in ("wanjax_forward_s", "diffusers_forward_s", "wanjax_step_s", "diffusers_step_s", "sdpa_forward_s"):
        assert row[key] > 0
    assert row["vs_sdpa_step"] == pytest.approx(row["sdpa_step_s"] / row["wanjax_step_s"])
    assert row["max_rel_error"] <= dit.PARITY
    assert row["flops_step"] == dit_flops(CFG, *SHAPE, M)["step"]
    assert row["speedup_step"] == pytest.approx(row["diffusers_step_s"] / row["wanjax_step_s"])
    assert row["mfu_step"] > 0 and isinstance(row["accept"], bool)
    table = dit.markdown(rows)
    assert table.count("\n|") == 2 and "fwd+bwd speed-up" in table and "fwd vs sdpa DiT" in table
