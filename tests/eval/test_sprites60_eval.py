"""configs/sprites60.yaml trains at toy size, and its export is scored in all three schedules (eval/sprites60)."""

import json
import math
import subprocess
import sys
from pathlib import Path

from wanjax.config import load_config, with_sample
from wanjax.eval.sprites60 import boundaries
from wanjax.train.loop import train

ROOT = Path(__file__).parents[2]
CONFIG = str(ROOT / "configs" / "sprites60.yaml")


def test_config_is_a_60_second_clip_and_boundaries():
    cfg = load_config(CONFIG)
    assert (cfg.sample.frames - 1) // cfg.vae.temporal_stride + 1 == 241 and cfg.train.causal_prob > 0
    chained = boundaries(cfg, "chained")  # windows start at latent 0, 16, 32, ...; new content 5 frames later
    assert chained[:3] == [81, 145, 209] and chained[-1] < 961
    assert boundaries(cfg, "synchronous") == chained  # the control: the same places
    assert boundaries(cfg, "pyramid")[:2] == [5, 13]  # sampled in segments of 2 latent frames: latent 2 -> video 5
    trained = with_sample(cfg, {"segment_frames": None})  # the segments it trains in: mesh.segment_frames
    assert cfg.mesh.segment_frames == 8 and boundaries(trained, "pyramid")[:2] == [29, 61]


def test_toy_model_scored_in_every_schedule(tmp_path):
    small = [
        "model.dim=32", "model.num_heads=2", "model.num_layers=1", "model.ffn_dim=32", "data.frames=65",
        "data.eval_clips=8", "data.workers=0", "train.batch_size=8", "train.steps=2", "train.eval_every=2",
        "train.checkpoint_every=2", "mesh.segment_frames=4", f"train.workdir={tmp_path / 'run'}",
    ]  # fmt: skip
    train(load_config(CONFIG, small), progress=False)
    out = tmp_path / "longvideo.json"
    args = ["--ckpt", str(tmp_path / "run" / "export"), "--clips", "2", "--batch", "2", "--json", str(out)]
    sample = ["frames=65", "steps=2", "window=6", "overlap=2"]
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval_longvideo.py"), *args, "--references", *sample], check=True
    )
    results = json.loads(out.read_text())
    assert set(results) == {"ckpt", "sample", "synchronous", "pyramid", "chained", "ground truth", "frame 0 repeated"}
    truth, still = results["ground truth"], results["frame 0 repeated"]
    assert truth["identity"] == 1.0 and truth["flashes"] == 0 and 0.9 < truth["motion"] < 1.1
    assert still["motion"] == 0.0 and still["drift_max"] == 0.0 and still["flashes"] == 0
    for schedule in ("synchronous", "pyramid", "chained"):
        r = results[schedule]
        assert r["clips"] == 2 and len(r["per_clip"]) == 2
        assert all(math.isfinite(r[k]) for k in ("drift_last", "temporal_flickering", "identity", "seam_ratio"))
