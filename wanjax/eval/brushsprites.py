"""Score a brush model on the BrushSprites eval split: sample every clip from its first frame and brushes, then
measure how well the video follows them (wanjax.eval.motion).

    results = evaluate_checkpoint("wanjax/assets/demo", clips=200)                # brushes given
    results = evaluate_checkpoint("wanjax/assets/demo", clips=200, brushes=False)  # brushes dropped

Clip i is `brush_sprites(clip_seed(0, "eval", i))`, the same clips as the TFDS builder's eval split.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from wanjax.config import with_sample
from wanjax.data.sprites import brush_sprites
from wanjax.data.tfds.procedural import clip_seed
from wanjax.eval.motion import copy_first_frame, evaluate
from wanjax.io.weights import load_checkpoint
from wanjax.motion import compile_brushes
from wanjax.motion.embed import motion_input
from wanjax.sample import generate


def eval_clips(count: int, frames: int = 17, size: int = 64) -> list[dict]:
    return [brush_sprites(clip_seed(0, "eval", i), frames, size, size) for i in range(count)]


def evaluate_checkpoint(
    ckpt: str | Path, clips: int = 200, *, brushes: bool = True, batch: int = 20, seed: int = 0,
    overrides: dict | None = None,
) -> dict:  # fmt: skip
    """Metrics of the checkpoint's samples of the first `clips` eval clips (sample settings from the checkpoint's
    config, updated by `overrides`, e.g. {"guidance_motion": 3.0}); brushes=False samples with the brushes dropped."""
    cfg, dit, vae = load_checkpoint(ckpt)
    cfg = with_sample(cfg, overrides or {})
    data = eval_clips(clips, cfg.sample.frames, cfg.sample.height)
    videos, t0 = [], time.perf_counter()
    for i in range(0, clips, batch):
        part = data[i : i + batch]
        motion = motion_input([compile_brushes(c["brushes"], max_tracks=cfg.sample.max_tracks) for c in part], cfg.vae)
        if cfg.model.motion == "none":  # the no-motion baseline
            motion = None
        elif not brushes:
            motion = motion.dropped()
        context = jnp.zeros((len(part), 1, cfg.model.text_dim), jnp.float32)
        image = np.stack([c["video"][0] for c in part])
        frames, _ = generate(dit, vae, cfg, seed + i, context, image=image, motion=motion, progress=False)
        videos += list(frames)
    metrics = evaluate(videos, data)
    return metrics | {
        "clips": clips,
        "brushes": brushes,
        "motion": cfg.model.motion,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def evaluate_copy(clips: int = 200, frames: int = 17, size: int = 64) -> dict:
    """The reference row: the same metrics for frame 0 held for the whole clip (no model)."""
    data = eval_clips(clips, frames, size)
    return evaluate(copy_first_frame(data), data) | {"clips": clips, "model": "copy frame 0"}
