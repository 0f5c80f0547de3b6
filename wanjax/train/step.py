"""The train step: one pure function, jit-compiled with explicit shardings and the state donated.

step = make_train_step(graphdef, tx, cfg, mesh, state)
state, metrics = step(state, batch)   # batch: {"latents": [B, F, H, W, C], "context": [B, M, text_dim],
                                      #         optional "frame_weight": [B, F], "cond_frames": [B, F],
                                      #         optional motion: "motion_xy", "motion_visible", ... (MOTION_KEYS)}
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from wanjax.config import Config
from wanjax.diffusion.conditioning import with_condition
from wanjax.diffusion.flow import NUM_TRAIN_TIMESTEPS, add_noise, flow_loss, frame_noise, frame_sigmas
from wanjax.model.dit import AttnSpec
from wanjax.model.motion import Motion
from wanjax.parallel.mesh import check_divisible, logical_to_spec
from wanjax.train.state import TrainState, learning_rate, state_shardings

BATCH_LAYOUT = {
    "latents": ("batch", "frames", None, None, None),
    "context": ("batch", None, None),
    "frame_weight": ("batch", "frames"),
    "cond_frames": ("batch", "frames"),
    "condition": ("batch", "frames", None, None, None),
    "image_context": ("batch", None, None),
    "motion_xy": ("batch", None, None, None, None),
    "motion_visible": ("batch", None, None, None),
    "motion_valid": ("batch", None),
    "motion_kind": ("batch", None),
    "motion_brush": ("batch", None),
    "guide": ("batch", None, None, None, None),
}
MOTION_KEYS = ("xy", "visible", "valid", "kind", "brush")


def motion_batch(motion: Motion) -> dict:
    """Motion -> the batch entries that carry it (strength is not trained: always 1)."""
    return {f"motion_{k}": getattr(motion, k) for k in MOTION_KEYS}


def brush_motion(cfg: Config, batch: dict, rng: np.random.Generator | None = None) -> dict:
    """A host batch plus its motion entries (numpy), train.max_tracks tracks per clip: from "brushes" (B brush files,
    the same compile_brushes as sampling) or from stored point tracks "tracks_xy" [B, P, T, 2], "tracks_visible",
    "tracks_valid" (real clips), a random subset per clip as data.track_* say (`sample_tracks`; rng: the input
    pipeline's per-batch generator, else one seeded with train.seed). Runs in the input pipeline's workers."""
    from wanjax.motion import compile_brushes
    from wanjax.motion.embed import motion_input

    if "tracks_xy" in batch:
        from wanjax.data.track_sampling import sample_tracks

        rng = np.random.default_rng(cfg.train.seed) if rng is None else rng
        d, s = cfg.data, cfg.vae.spatial_stride
        size = (batch["latents"].shape[-2] * s, batch["latents"].shape[-3] * s)
        options = dict(rows=cfg.train.max_tracks, size=size, count=d.track_count, spread=d.track_spread)
        stored = zip(batch["tracks_xy"], batch["tracks_visible"], batch["tracks_valid"], strict=True)
        tracks = [sample_tracks(*clip, rng, dropout=d.track_dropout, **options) for clip in stored]
    else:
        tracks = [compile_brushes(b, max_tracks=cfg.train.max_tracks) for b in batch["brushes"]]
    return batch | motion_batch(motion_input(tracks, cfg.vae))


def batch_motion(batch: dict) -> Motion | None:
    """The batch's brush tracks as the DiT's motion input, or None when it has none."""
    if "motion_xy" not in batch:
        return None
    strength = jnp.ones(batch["motion_valid"].shape[:1], jnp.float32)
    return Motion(**{k: batch[f"motion_{k}"] for k in MOTION_KEYS}, strength=strength)


def batch_guide(batch: dict, drop: jax.Array | None = None) -> jax.Array | None:
    """The warp guide [B, F, H, W, C] of a batch whose frames 1 … were computed with the data ("guide" [B, F-1, H,
    W, C], `wanjax.train.guides`), or None. Frame 0 is the clean latent frame 0 itself; where `drop` [B] (the
    examples whose brushes are dropped) it is frame 0 on every frame, as the model's own guide is without tracks."""
    if "guide" not in batch:
        return None
    x = batch["latents"]
    first = x[:, :1]
    guide = jnp.concatenate([first, batch["guide"].astype(x.dtype)], axis=1)
    return guide if drop is None else jnp.where(drop[:, None, None, None, None], first, guide)


def loss_fn(model: nnx.Module, batch: dict, key: jax.Array, cfg: Config, attn: AttnSpec) -> jax.Array:
    """Flow-matching loss of one batch. Frames marked in `cond_frames` stay clean (sigma 0) and are the
    conditioning (image-to-video); a model with condition channels (Wan2.1-I2V) reads `condition` beside the noisy
    latents, and CLIP `image_context` when it has an image branch; `frame_weight` excludes frames from the loss.
    Brush tracks, if any, are dropped for a train.motion_dropout share of the examples (the unconditional branch of
    motion guidance), and with them a warp guide the data carries (`batch_guide`). Under a causal mask (a pyramid
    step, train.causal_prob) every example gets one noise level per segment.
    """
    x = batch["latents"]
    B, F = x.shape[:2]
    k_sigma, k_eps, k_drop = jax.random.split(key, 3)
    t = cfg.train
    per_segment = 1.0 if attn.mask == "causal" else t.per_segment_prob
    sigma = frame_sigmas(k_sigma, B, F, cfg.mesh.segment_frames, per_segment, t.timestep_sampling, t.shift)
    weight = batch.get("frame_weight")
    if "cond_frames" in batch:
        cond = batch["cond_frames"].astype(jnp.float32)
        sigma = sigma * (1 - cond)
        weight = (1 - cond) if weight is None else weight * (1 - cond)
    eps = frame_noise(k_eps, x.shape, t.noise_correlation).astype(x.dtype)
    motion, drop = batch_motion(batch), jax.random.bernoulli(k_drop, t.motion_dropout, (B,))
    if motion is not None:
        motion = motion.dropped(drop)
    x_t = with_condition(add_noise(x, eps, sigma), batch.get("condition"))
    pred = model(
        x_t, sigma * NUM_TRAIN_TIMESTEPS, batch["context"], motion, attn=attn, image_context=batch.get("image_context"),
        guide=batch_guide(batch, drop),
    )  # fmt: skip
    return flow_loss(pred, x, eps, weight, sigma if t.loss == "sample" else None)


def ema_decay(decay: float, step: jax.Array) -> jax.Array:
    """The EMA's decay at update `step` (0-based): min(decay, (1 + step) / (10 + step)), the warm-up of TensorFlow's
    ExponentialMovingAverage(num_updates) and diffusers' EMAModel. A fixed decay keeps decay**steps of the random
    init: 37 % after 1,000 steps at 0.999 (a Sprites60 export sampled pure noise), 5 % after 3,000."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.float32(decay), (1.0 + step) / (10.0 + step))


def train_step(
    graphdef: nnx.GraphDef, tx: optax.GradientTransformation, cfg: Config, attn: AttnSpec, state: TrainState,
    batch: dict,
) -> tuple[TrainState, dict]:  # fmt: skip
    """Loss, grads (of the trained parameters only), optimizer update, EMA. Pure: same inputs, same outputs."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

    def loss_of(params):
        return loss_fn(nnx.merge(graphdef, params, state.frozen), batch, key, cfg, attn)

    loss, grads = jax.value_and_grad(loss_of)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = ema_decay(cfg.train.ema_decay, state.step) if cfg.train.ema_warmup else cfg.train.ema_decay
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema, params)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "lr": learning_rate(cfg.train)(state.step)}
    return state.replace(step=state.step + 1, params=params, ema=ema, opt_state=opt_state), metrics


def batch_shardings(batch: dict, mesh: Mesh) -> dict:
    """Each batch entry's sharding by BATCH_LAYOUT. A frame count the ring does not divide (241 latent frames over a
    ring of 8) comes in replicated over the ring; inside the model the tokens are split, the ring padding them."""

    def names(key: str) -> tuple:
        shape = batch[key].shape
        return tuple(
            None if n == "frames" and shape[i] % math.prod(mesh.shape[a] for a in _axes(n)) else n
            for i, n in enumerate(BATCH_LAYOUT[key])
        )

    return {k: NamedSharding(mesh, logical_to_spec(names(k))) for k in batch}


def _axes(name: str) -> tuple[str, ...]:
    axes = logical_to_spec((name,))[0]
    return (axes,) if isinstance(axes, str) else tuple(axes or ())


def make_train_step(
    graphdef: nnx.GraphDef, tx: optax.GradientTransformation, cfg: Config, mesh: Mesh | None, state: TrainState,
    batch: dict, causal: bool = False, shares: int = 1,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:  # fmt: skip
    """jit(train_step) with the state donated; with a mesh, explicit in/out shardings for state and batch. causal:
    the pyramid way (causal segment mask, noise per segment), else the synchronous way (full attention). batch:
    this process's rows, 1/shares of the global batch (`wanjax.parallel.distributed.row_share`)."""
    attn = AttnSpec.from_config(cfg.mesh, mesh, mask="causal" if causal else "full")

    def step(state, batch):
        return train_step(graphdef, tx, cfg, attn, state, batch)

    if mesh is None:
        return jax.jit(step, donate_argnums=0)
    rows = batch["latents"].shape[0] * shares
    check_divisible("train.batch_size (per step)", rows, mesh, ("data", "fsdp"))
    s_state = state_shardings(state, mesh)
    return jax.jit(
        step, in_shardings=(s_state, batch_shardings(batch, mesh)), out_shardings=(s_state, None), donate_argnums=0
    )
