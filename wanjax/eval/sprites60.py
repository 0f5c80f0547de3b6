"""Score a long-video model on the Sprites60 eval split in each sampling schedule (wanjax.eval.longvideo).

    results = evaluate_checkpoint("runs/sprites60/export", clips=20)   # {"synchronous": {...}, "pyramid": ..., ...}

Clip i is `sprites60(clip_seed(0, "eval", i))`, the same clips as the TFDS builder's eval split; every sample starts
from its clip's first frame (image-to-video) with the same seed in every schedule, so only the schedule differs.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from wanjax.config import Config, with_sample
from wanjax.data.sprites import sprites60
from wanjax.data.tfds.procedural import clip_seed
from wanjax.diffusion.schedules import SCHEDULES, chained_windows
from wanjax.eval.longvideo import evaluate_long
from wanjax.io.weights import load_checkpoint
from wanjax.sample import generate


def boundaries(cfg: Config, schedule: str) -> list[int]:
    """First video frames of the new content of each window (chained; also where synchronous is checked, as the
    control) or of each segment (pyramid). Latent frame f >= 1 decodes to video frames 4f - 3 … 4f."""
    ts, latents = cfg.vae.temporal_stride, (cfg.sample.frames - 1) // cfg.vae.temporal_stride + 1
    if schedule == "pyramid":
        starts = range(cfg.sample_segment_frames, latents, cfg.sample_segment_frames)
    else:
        starts = [
            start + cfg.sample.overlap
            for start, _ in chained_windows(latents, cfg.sample.window, cfg.sample.overlap)[1:]
        ]
    return [ts * (f - 1) + 1 for f in starts]


def evaluate_checkpoint(
    ckpt: str | Path, clips: int = 20, *, schedules: tuple[str, ...] = SCHEDULES, batch: int = 4, seed: int = 0,
    overrides: dict | None = None, references: bool = False,
) -> dict:  # fmt: skip
    """Mean long-video metrics of the checkpoint's samples of the first `clips` eval clips, per schedule (sample
    settings from the checkpoint's config, updated by `overrides`), and each clip's own numbers. references: also
    score, with no model, the clips' ground truth and their first frame held still ("ground truth", "frame 0
    repeated"; pyramid boundaries): what a perfect and a motionless video get."""
    cfg, dit, vae = load_checkpoint(ckpt)
    cfg = with_sample(cfg, overrides or {})
    data = [
        sprites60(clip_seed(0, "eval", i), cfg.sample.frames, cfg.sample.height, cfg.sample.width) for i in range(clips)
    ]
    results = {}
    if references:
        for name, video in (("ground truth", lambda c: c["video"]), ("frame 0 repeated", _still)):
            per_clip = [evaluate_long(video(c), c, boundaries(cfg, "pyramid"), cfg.sample.fps) for c in data]
            results[name] = _mean(per_clip) | {"clips": clips, "per_clip": per_clip}
    for schedule in schedules:
        run = with_sample(cfg, {"schedule": schedule})
        per_clip, t0 = [], time.perf_counter()
        for i in range(0, clips, batch):
            part = data[i : i + batch]
            context = jnp.zeros((len(part), 1, cfg.model.text_dim), jnp.float32)
            image = np.stack([c["video"][0] for c in part])
            frames, _ = generate(dit, vae, run, seed + i, context, image=image, progress=False)
            per_clip += [
                evaluate_long(v, c, boundaries(run, schedule), run.sample.fps)
                for v, c in zip(frames, part, strict=True)
            ]
        seconds = round(time.perf_counter() - t0, 1)
        results[schedule] = _mean(per_clip) | {"clips": clips, "seconds": seconds, "per_clip": per_clip}
    return results


def _mean(per_clip: list[dict]) -> dict:
    return {key: float(np.nanmean([m[key] for m in per_clip])) for key in per_clip[0]}


def _still(clip: dict) -> np.ndarray:
    """The clip's first frame, as many times as the clip has frames."""
    return np.repeat(clip["video"][:1], len(clip["video"]), axis=0)
