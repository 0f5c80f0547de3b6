"""The brush config's train-step benchmark: a real brush batch (tracks, conditioning frame) through the jitted step."""

import dataclasses
from pathlib import Path

from wanjax.bench.train import (
    BRUSH_BEFORE,
    BRUSH_GUIDE_IN_STEP,
    BRUSH_ONE_MORE_BLOCK,
    BRUSH_WITHOUT,
    brush_clips,
    run_brush,
)
from wanjax.config import load_config

BRUSH = Path(__file__).parents[2] / "configs" / "brushsprites.yaml"
SMALL = ["data.frames=9", "data.height=32", "data.width=32", "train.batch_size=2", "model.num_layers=1"]


def test_run_brush_times_the_step_on_a_real_brush_batch():
    cfg = load_config(BRUSH, SMALL)
    video, brushes = brush_clips(cfg, 2)
    assert video.shape == (2, 9, 32, 32, 3) and -1 <= video.min() < video.max() <= 1
    assert all(b["size"] == [32, 32] and b["frames"] == 9 for b in brushes)
    result = run_brush(cfg, runs=2)
    assert result["batch"] == 2 and result["clips_per_s"] == 2 / result["step_s"]
    assert result["flops_per_s"] > 1e6 and 0 < result["host_batch_s"] < 30
    assert 0 < result["guide_build_s_per_clip"] < 10  # the config stores its guides: computing one is timed apart


def test_the_step_breakdown_removes_one_part_of_the_shipped_config_each():
    """BRUSH_WITHOUT: each entry is a valid config that differs from the shipped one in that part alone; the block
    part adds one block."""
    shipped = load_config(BRUSH)
    changed = {
        "warp_guide": (("model", "residual", "first_frame"),),
        "motion_embedding": (("model", "motion", "none"),),
        "one_block": (("model", "num_layers", shipped.model.num_layers + 1),),
        "guide_in_step": (("data", "cache_guide", False),),
    }
    variants = {k: list(o) for k, o in BRUSH_WITHOUT.items()}
    variants["one_block"] = [BRUSH_ONE_MORE_BLOCK.format(shipped.model.num_layers + 1)]
    variants["guide_in_step"] = list(BRUSH_GUIDE_IN_STEP)
    assert set(variants) == set(changed)
    for part, overrides in variants.items():
        cfg = load_config(BRUSH, overrides)
        for section, field, value in changed[part]:
            assert getattr(getattr(cfg, section), field) == value != getattr(getattr(shipped, section), field)
            assert dataclasses.replace(cfg, **{section: getattr(shipped, section)}) == shipped
    assert not any(load_config(BRUSH, list(o)).stores_guides for o in BRUSH_WITHOUT.values())  # guide computed, if any


def test_before_is_the_recipe_of_the_model_bundled_until_2026_12_05():
    """BRUSH_BEFORE rebuilds configs/brushsprites.yaml as it was at 0caac44 (issue #16's "today": 4 scanned blocks,
    no guide, velocity loss, first frame concatenated, batch 8), whatever the shipped config is now."""
    before = load_config(BRUSH, list(BRUSH_BEFORE))
    m, t = before.model, before.train
    assert (m.num_layers, m.scan_layers, m.residual, m.first_frame_concat) == (4, True, "none", True)
    assert (m.dim, m.num_heads, m.ffn_dim, m.motion, m.motion_dim, m.prediction) == (128, 2, 512, "splat", 32, "sample")
    assert (t.batch_size, t.loss, t.cond_frames, before.data.cache_guide) == (8, "velocity", 1, False)
