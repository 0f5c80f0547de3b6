"""Fine-tuning: the model a run trains (from train.init's weights, with its LoRA adapters), and a run's adapters.

    parts = build_model(cfg)          # WanDiT with the init weights + new branches + adapters, and the data's VAE
    cfg, adapters = run_adapters("runs/lora")    # the EMA adapters of a run's latest checkpoint

A pretrained Wan model gains what the config adds (the motion branch: zero-initialised, so step 0 computes exactly
the pretrained outputs) and keeps everything else; any other difference in architecture is an error that names
the field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
from flax import nnx

from wanjax.config import Config, load_config
from wanjax.errors import WanjaxError
from wanjax.io.convert import check_params, flat_params, load_flat_params
from wanjax.io.weights import Pipeline, load_pipeline
from wanjax.model.dit import WanDiT
from wanjax.model.lora import adapters, add_lora
from wanjax.model.pixel import make_vae

VAE_SEED = 1
# Branches a config may add to a pretrained model (they keep their init), and settings that change no weights
ADDED = ("motion_embed/", "motion_proj/")
FREE = ("dtype", "param_dtype", "remat", "motion", "motion_dim", "motion_subframes", "motion_sigma", "subframe_ramp")


@dataclasses.dataclass
class Parts:
    """What a run trains and the frozen encoders its data goes through. pipe: train.init's checkpoint (its CLIP
    image encoder and processor for Wan2.1-I2V / FLF2V) or None."""

    dit: WanDiT
    vae: nnx.Module
    pipe: Pipeline | None = None


def check_architecture(cfg: Config, ckpt: Config, where: str) -> None:
    """The config's model and VAE must be the checkpoint's (but for FREE settings): one error naming each field."""
    diff = [
        f"{section}.{f.name}={getattr(getattr(cfg, section), f.name)!r} (checkpoint: "
        f"{getattr(getattr(ckpt, section), f.name)!r})"
        for section in ("model", "vae")
        for f in dataclasses.fields(getattr(cfg, section))
        if f.name not in FREE and getattr(getattr(cfg, section), f.name) != getattr(getattr(ckpt, section), f.name)
    ]
    if diff:
        raise WanjaxError(
            f"train.init={where} is another architecture than the config: {'; '.join(diff)}; set these as the "
            "checkpoint has them (its config: a preset such as model.preset=wan2.1-i2v-14b-480p)"
        )


def init_weights(dit: WanDiT, pretrained: WanDiT, where: str) -> None:
    """Copy `pretrained`'s parameters into `dit` (in place, cast to dit's dtypes); parameters under ADDED keep
    their init. Missing or unexpected parameters and shape mismatches are one error listing them."""
    ours, theirs = flat_params(dit), flat_params(pretrained)
    kept = {k: v for k, v in ours.items() if k.startswith(ADDED) and k not in theirs}
    check_params(theirs, {k: v.shape for k, v in ours.items() if k not in kept}, f"train.init={where}")
    load_flat_params(dit, theirs | kept)


def build_model(cfg: Config) -> Parts:
    """The DiT a run starts from (train.seed's init, or train.init's weights plus the config's new branches), with
    LoRA adapters when train.lora_rank > 0, and the VAE that makes its latents (the checkpoint's, or a fresh one
    from vae's config, seeded: the toy codecs have no weights)."""
    t = cfg.train
    dit = WanDiT(cfg.model, rngs=nnx.Rngs(t.seed))
    pipe = None
    if t.init is not None:
        if not Path(t.init).is_dir():
            raise WanjaxError(f"train.init={t.init} is not a folder (a diffusers Wan folder or a wanjax checkpoint)")
        pipe = load_pipeline(t.init, second_expert=False)
        check_architecture(cfg, pipe.cfg, t.init)
        init_weights(dit, pipe.dit, t.init)
        pipe = dataclasses.replace(pipe, dit=None)  # its weights are in dit now: keep one copy
    if t.lora_rank > 0:
        add_lora(dit, t.lora_rank, t.lora_alpha, t.lora_targets, nnx.Rngs(t.seed + 1))
    vae = pipe.vae if pipe is not None else make_vae(cfg.vae, nnx.Rngs(VAE_SEED))
    return Parts(dit, vae, pipe)


def run_adapters(run: str | Path) -> tuple[Config, dict]:
    """(config, {layer path: (A, B, scale)}) of the EMA adapters in run folder `run`'s latest good checkpoint."""
    from wanjax.train.checkpoint import Checkpointer, abstract_like
    from wanjax.train.state import init_state, optimizer, trainable

    run = str(run).rstrip("/")
    if not Path(f"{run}/config.yaml").is_file():
        raise WanjaxError(f"{run} is not a training run: no config.yaml (give a train.workdir of `wanjax train`)")
    cfg = load_config(f"{run}/config.yaml")
    if cfg.train.lora_rank <= 0:
        raise WanjaxError(f"{run} trained no LoRA (train.lora_rank=0): its export/ folder is the whole model")
    t = cfg.train

    def abstract():
        dit = WanDiT(cfg.model, rngs=nnx.Rngs(0))
        add_lora(dit, t.lora_rank, t.lora_alpha, t.lora_targets, nnx.Rngs(1))
        return init_state(dit, optimizer(t), 0, trainable(t))

    graphdef, state = nnx.eval_shape(abstract)
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), state.saved())
    ckpt = Checkpointer(f"{run}/checkpoints", t.keep)
    try:
        _, restored, _ = ckpt.restore(abstract_like(target))
    finally:
        ckpt.close()
    return cfg, adapters(nnx.merge(graphdef, restored.ema, state.frozen))
