"""The brush config's train-step benchmark: a real brush batch (tracks, conditioning frame) through the jitted step."""

from pathlib import Path

from wanjax.bench.train import brush_clips, run_brush
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
