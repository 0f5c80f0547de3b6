"""Generate a video: noise -> sampler loop over the DiT -> VAE decode -> sample files.

`generate` is the library function; `run_sample` is what `wanjax sample` and `wanjax demo` call.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import Config, SampleConfig, check_frame_count, config_to_dict, load_config
from wanjax.diffusion.flow import NUM_TRAIN_TIMESTEPS, sampling_sigmas
from wanjax.diffusion.samplers import sample
from wanjax.errors import WanjaxError
from wanjax.io.export import to_uint8, write_sample
from wanjax.model.dit import WanDiT
from wanjax.model.vae import WanVAE

DEMO_CHECKPOINT = Path(__file__).parent / "assets" / "demo"


def latent_shape(scfg: SampleConfig, cfg: Config) -> tuple[int, int, int, int]:
    """(F, h, w, C) of the latent video for the sample settings; clear errors for sizes that cannot work."""
    ts, ss = cfg.vae.temporal_stride, cfg.vae.spatial_stride
    check_frame_count(scfg.frames, "sample.frames", ts)
    unit = ss * max(cfg.model.patch_size[1:])
    for name, size in (("height", scfg.height), ("width", scfg.width)):
        if size % unit:
            raise WanjaxError(
                f"sample.{name}={size} is not a multiple of {unit} (VAE stride {ss} x patch); "
                f"use {size // unit * unit or unit} or {(size // unit + 1) * unit}"
            )
    return (scfg.frames - 1) // ts + 1, scfg.height // ss, scfg.width // ss, cfg.model.in_channels


def generate(dit: WanDiT, vae: WanVAE, cfg: Config, seed: int, context: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Synchronous flow-matching sampling. context [1, M, text_dim] -> (frames uint8 [T, H, W, 3], latents)."""
    scfg = cfg.sample
    shape = latent_shape(scfg, cfg)
    noise = jax.random.normal(jax.random.key(seed), (1, *shape), jnp.float32)
    sigmas = np.repeat(sampling_sigmas(scfg.steps, scfg.shift)[:, None], shape[0], axis=1)  # [steps + 1, F]
    graphdef, params = nnx.split(dit)

    def velocity(params, x, sigma):
        return nnx.merge(graphdef, params)(x, sigma[None] * NUM_TRAIN_TIMESTEPS, context)

    latents = sample(velocity, params, noise, sigmas)
    video = vae.decode(latents)
    return to_uint8(video[0]), np.asarray(latents[0])


def run_sample(
    config: str | Path | None,
    out: str | Path,
    *,
    ckpt: str | Path | None = None,
    seed: int | None = None,
    prompt: str | None = None,
    image: str | None = None,
    brush: str | None = None,
    overrides: list[str] = (),
    name: str = "sample",
) -> dict[str, Path]:
    """Load, generate, write OUT/NAME.{mp4,gif,png,npz,json}. Without a checkpoint: random weights, seed 0."""
    if image is not None or brush is not None:
        raise WanjaxError("--image/--brush need the image-to-video brush model, which arrives with issue #6")
    if prompt:
        raise WanjaxError("this model has no text encoder yet (issue #8); sample without --prompt")
    cfg = load_config(config, overrides)
    ckpt = Path(ckpt) if ckpt is not None else (DEMO_CHECKPOINT if DEMO_CHECKPOINT.is_dir() else None)
    t0 = time.perf_counter()
    if ckpt is None:
        dit, vae = WanDiT(cfg.model, rngs=nnx.Rngs(0)), WanVAE(cfg.vae, rngs=nnx.Rngs(1))
    else:
        from wanjax.io.weights import load_checkpoint

        ckpt_cfg, dit, vae = load_checkpoint(ckpt)  # the checkpoint's architecture wins over CONFIG's
        cfg = dataclasses.replace(cfg, model=ckpt_cfg.model, vae=ckpt_cfg.vae)
    seed = cfg.sample.seed if seed is None else seed
    t_load = time.perf_counter()
    context = jnp.zeros((1, 1, cfg.model.text_dim), jnp.float32)  # text-free until a text encoder lands
    frames, latents = generate(dit, vae, cfg, seed, context)
    t_done = time.perf_counter()
    meta = {
        "config": config_to_dict(cfg),
        "checkpoint": str(ckpt) if ckpt else "random init (no checkpoint)",
        "seed": seed,
        "prompt": prompt,
        "brushes": None,
        "frames": list(frames.shape),
        "timings_s": {"load": round(t_load - t0, 3), "generate": round(t_done - t_load, 3)},
        "devices": [str(d) for d in jax.devices()],
    }
    return write_sample(out, frames, fps=cfg.sample.fps, meta=meta, latents=latents, name=name)
