"""Sampler throughput of a config: video frames per second of `generate` (DiT steps + VAE decode), after a
warm-up call that compiles it."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import Config
from wanjax.model.dit import WanDiT
from wanjax.model.pixel import make_vae
from wanjax.sample import generate


def run(cfg: Config, runs: int = 3) -> dict:
    """Median seconds per video at cfg.sample (frames, size, steps, solver, guidance) and frames per second."""
    dit, vae = WanDiT(cfg.model, rngs=nnx.Rngs(0)), make_vae(cfg.vae, nnx.Rngs(1))
    context = jnp.zeros((1, 1, cfg.model.text_dim))
    jax.block_until_ready(generate(dit, vae, cfg, 0, context, progress=False))
    times = []
    for seed in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(generate(dit, vae, cfg, seed, context, progress=False))
        times.append(time.perf_counter() - t0)
    s = cfg.sample
    seconds = float(np.median(times))
    return {"frames": s.frames, "height": s.height, "width": s.width, "steps": s.steps, "solver": s.solver,
            "seconds_per_video": seconds, "frames_per_s": s.frames / seconds}  # fmt: skip
