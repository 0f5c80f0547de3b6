"""The host training loop: data, steps, eval, logging, checkpoints, preemption, NaN stop, export.

    summary = train(load_config("configs/tiny.yaml", ["train.steps=100"]))

Everything under train.workdir: checkpoints/ (Orbax), tensorboard/, metrics.jsonl, export/ (EMA weights as
a wanjax sampling checkpoint). A resumed run continues exactly: same batches, same RNG, bitwise the same
losses on CPU.
"""

from __future__ import annotations

import dataclasses
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import Config, TrainConfig, config_to_dict
from wanjax.diffusion.conditioning import channel_condition, with_condition
from wanjax.diffusion.flow import NUM_TRAIN_TIMESTEPS, add_noise, flow_loss
from wanjax.errors import WanjaxError
from wanjax.io.weights import Pipeline
from wanjax.model.dit import AttnSpec
from wanjax.model.flops import train_step_flops
from wanjax.parallel.distributed import agreed_preemption, barrier, row_share, to_host
from wanjax.parallel.mesh import check_divisible, logical_to_spec, make_mesh, maybe_initialize_distributed
from wanjax.train.checkpoint import Checkpointer, abstract_like, fingerprint
from wanjax.train.finetune import build_model
from wanjax.train.metrics import RunLog, peak_flops
from wanjax.train.state import init_state, optimizer, state_shardings, trainable
from wanjax.train.step import batch_guide, batch_motion, batch_shardings, brush_motion, make_train_step

EVAL_SIGMAS = (0.2, 0.5, 0.8)  # fixed noise levels of the eval loss, so evals are comparable across steps


class Preemption:
    """SIGTERM -> save at a step boundary and exit (TPU maintenance, spot VMs). One process: a signal handler sets a
    flag. Several: JAX's preemption sync manager hears the signal (a Python handler would replace its own) and every
    process stops at the same step, whichever got the signal."""

    def __init__(self):
        self.requested = False
        self.agreed = jax.process_count() > 1
        if not self.agreed:
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def reached(self, step: int) -> bool:
        """Whether to save after step `step` and stop; on several processes call it at every step, on all."""
        return agreed_preemption(step) if self.agreed else self.requested

    def close(self) -> None:
        if not self.agreed:
            signal.signal(signal.SIGTERM, self.previous)


def every(n: int, period: int) -> bool:
    """Whether step n is one of every `period` steps (period 0: none)."""
    return period > 0 and n % period == 0


def is_causal_step(tcfg: TrainConfig, step: int) -> bool:
    """Whether step `step` trains the pyramid way (train.causal_prob): a pure function of (seed, step), so a
    resumed run makes the same choices."""
    return bool(tcfg.causal_prob) and np.random.default_rng([tcfg.seed, step]).random() < tcfg.causal_prob


def eval_loss_fn(graphdef, cfg: Config, attn: AttnSpec) -> Callable:
    """jit'd mean flow loss over EVAL_SIGMAS with fixed noise (conditioning frames clean and not scored; brushes
    kept): params, frozen params, batch -> scalar."""

    def run(params, frozen, batch):
        model = nnx.merge(graphdef, params, frozen)
        x = batch["latents"]
        eps = jax.random.normal(jax.random.key(1234), x.shape, x.dtype)
        keep = 1.0 - batch["cond_frames"] if "cond_frames" in batch else jnp.ones(x.shape[:2])
        losses = []
        for s in EVAL_SIGMAS:
            sigma = s * keep
            x_t = with_condition(add_noise(x, eps, sigma), batch.get("condition"))
            pred = model(
                x_t, sigma * NUM_TRAIN_TIMESTEPS, batch["context"], batch_motion(batch), attn=attn,
                image_context=batch.get("image_context"), guide=batch_guide(batch),
            )  # fmt: skip
            losses.append(flow_loss(pred, x, eps, keep))
        return jnp.mean(jnp.stack(losses))

    return jax.jit(run)


def to_global(batch: dict, shardings: dict, shares: int = 1) -> dict:
    """This process's share of a batch (1/shares of its rows, all of the rest) -> global arrays over the mesh (on a
    pod each host reads its own examples; on one host this is a plain device_put)."""
    return {
        k: jax.make_array_from_process_local_data(shardings[k], np.asarray(v), (len(v) * shares, *np.shape(v)[1:]))
        for k, v in batch.items()
    }


def image_inputs(cfg: Config, vae: nnx.Module, pipe: Pipeline | None, video: np.ndarray) -> dict:
    """What an image-to-video Wan model reads besides the noise, from clips video [B, T, H, W, 3] in [-1, 1]: the
    condition channels of a model with them (Wan2.1-I2V: mask + the VAE latent of the first frame, and of the last
    for first-last-frame models) and CLIP tokens [B, I, image_dim] of a model with an image branch (pipe:
    train.init's checkpoint, whose encoder makes them). {} for other models."""
    from wanjax.io.export import to_uint8
    from wanjax.sample_inputs import image_tokens

    m = cfg.model
    first, last = to_uint8(video[:, 0]), (to_uint8(video[:, -1]) if m.pos_embed_seq_len else None)
    out = {}
    if m.in_channels != m.out_channels:
        out["condition"] = channel_condition(vae.encode, first, last, video.shape[1], cfg.vae.temporal_stride)
    if m.image_dim is not None:
        if pipe is None or pipe.clip is None:
            raise WanjaxError("a model with an image branch (model.image_dim) needs train.init's CLIP encoder")
        out["image_context"] = jnp.concatenate([
            image_tokens(pipe.clip, pipe.image_processor, m, f, None if last is None else last[i])
            for i, f in enumerate(first)
        ])  # fmt: skip
    return out


def make_encoder(cfg: Config, vae: nnx.Module, pipe: Pipeline | None = None) -> Callable[[dict], dict]:
    """Host batch -> model batch {"latents", "context", ...}: a procedural {"video": [B, T, H, W, 3] in [-1, 1]} is
    encoded by the frozen VAE; cached real video ({"latents", "context"}, data/tfds) passes through. With
    train.cond_frames the leading latent frames are conditioning; an image-to-video Wan model gets its
    `image_inputs`; a brush model gets each clip's brushes as tracks (`brush_motion`: already done by the input
    pipeline's workers, else here)."""
    m = cfg.model

    def encode(batch: dict) -> dict:
        if "latents" in batch:
            if m.in_channels != m.out_channels or m.image_dim is not None:
                raise WanjaxError(
                    "an image-to-video model with condition channels or CLIP tokens trains on pixel clips (its first "
                    "frame makes the condition); cached latents (data.name=video_latents) hold none yet"
                )
            out = {"latents": jnp.asarray(batch["latents"]), "context": jnp.asarray(batch["context"])}
        else:
            latents = vae.encode(jnp.asarray(batch["video"]))
            context = jnp.zeros((latents.shape[0], 1, cfg.model.text_dim), jnp.float32)  # text-free toy data
            out = {"latents": latents, "context": context} | image_inputs(cfg, vae, pipe, np.asarray(batch["video"]))
        B, F = out["latents"].shape[:2]
        if cfg.train.cond_frames:
            out["cond_frames"] = jnp.asarray(np.arange(F) < cfg.train.cond_frames, jnp.float32)[None].repeat(B, 0)
        if cfg.model.motion != "none":
            if "motion_xy" not in batch:
                batch = brush_motion(cfg, batch)
            out |= {k: jnp.asarray(batch[k]) for k in batch if k.startswith("motion_") or k == "guide"}
        return out

    return encode


def train(
    cfg: Config, data: Callable[[str], Iterator[dict]] | None = None, progress: bool = True
) -> dict:  # fmt: skip
    """Run (or resume) training to train.steps. `data(split)` yields host batches (default: the config's
    dataset through Grain). Returns a summary: steps run, first/last eval loss, status."""
    maybe_initialize_distributed()
    tcfg = cfg.train
    workdir = tcfg.workdir.rstrip("/")  # a string: Path() would turn gs://bucket into gs:/bucket
    mesh = make_mesh(cfg.mesh)
    batch_axes = logical_to_spec(("batch",))[0]
    check_divisible("train.batch_size", tcfg.batch_size, mesh, batch_axes)
    # Which rows of each global batch this process reads: its own, or those of the processes it shares them with.
    share = row_share(jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(batch_axes)), tcfg.batch_size)
    if data is None:
        from wanjax.data.pipeline import config_batches

        data = lambda split: config_batches(cfg, split, share)  # noqa: E731
    parts = build_model(cfg)
    vae = parts.vae  # frozen: defines the latent space
    encode = make_encoder(cfg, vae, parts.pipe)
    tx = optimizer(tcfg)
    graphdef, state = init_state(parts.dit, tx, tcfg.seed, trainable(tcfg))
    _write_config(cfg, workdir)
    s_state = state_shardings(state, mesh)
    state = jax.device_put(state, s_state)
    train_iter = data("train")
    eval_host = next(data("eval"))
    eval_batch = encode(eval_host)

    ckpt = Checkpointer(f"{workdir}/checkpoints", tcfg.keep)
    start = 0
    frozen = fingerprint(state.frozen)  # not in checkpoints: rebuilt from train.init / the seed, and checked
    if tcfg.resume and ckpt.steps():
        start, restored, meta = ckpt.restore(abstract_like(state.saved(), s_state.saved()), train_iter)
        if meta.get("frozen", []) != frozen:
            raise WanjaxError(
                f"the frozen parameters differ from those {workdir}'s checkpoints trained with (train.init, "
                "train.trainable or train.lora_* changed?); resume with the run's settings, or use a new train.workdir"
            )
        state = restored.replace(frozen=state.frozen)
    first = encode(next(train_iter))
    s_batch = batch_shardings(first, mesh)
    shares = share[1]
    # Compiled before the first step, then every process waits for the others: the steps' collectives start
    # together however long one host took to compile.
    g_first, g_eval = to_global(first, s_batch, shares), to_global(eval_batch, s_batch, shares)
    step_fn = make_train_step(graphdef, tx, cfg, mesh, state, first, shares=shares).lower(state, g_first).compile()
    causal_fn = None
    if tcfg.causal_prob:
        causal_fn = make_train_step(graphdef, tx, cfg, mesh, state, first, True, shares).lower(state, g_first).compile()
    eval_fn = eval_loss_fn(graphdef, cfg, AttnSpec.from_config(cfg.mesh, mesh))
    eval_fn = eval_fn.lower(state.params, state.frozen, g_eval).compile()
    barrier("train steps compiled")
    # Throughput counts the global batch: `shares` groups of processes read its rows.
    flops = train_step_flops(cfg.model, first) * shares
    tokens = int(np.prod(first["latents"].shape[:4])) // int(np.prod(cfg.model.patch_size)) * shares
    peak = peak_flops()

    log = RunLog(workdir, start, tcfg.steps, progress)
    stop = Preemption()
    summary = {"start_step": start, "status": "done", "eval_loss": []}
    batch, t_last, n_last, metrics = first, time.perf_counter(), start, None
    try:
        for step in range(start, tcfg.steps):
            causal = is_causal_step(tcfg, step)
            previous = metrics
            state, metrics = (causal_fn if causal else step_fn)(state, to_global(batch, s_batch, shares))
            # At most one step queued ahead of the devices: the host never runs dozens of programs ahead (XLA's
            # CPU client can deadlock its collectives with 32 queued per device), and timings stay honest.
            jax.block_until_ready(previous)
            n = step + 1
            stopping = stop.reached(n)  # read once: a later signal is handled at the end of the next step
            saving = every(n, tcfg.checkpoint_every) or n == tcfg.steps or stopping
            row = {}
            if n % tcfg.log_every == 0 or saving:
                row = {k: float(v) for k, v in metrics.items()} | ({"causal": int(causal)} if causal_fn else {})
                if not np.isfinite(row["loss"]):
                    ckpt.wait()
                    good = ckpt.steps()
                    raise WanjaxError(
                        f"loss is {row['loss']} at step {n}; training stopped. Last good checkpoint: "
                        f"{f'step {good[-1]} in {ckpt.directory}' if good else 'none'} (lower train.lr?)"
                    )
                rate = (n - n_last) / (time.perf_counter() - t_last)
                row |= {"steps_per_s": rate, "tokens_per_s": rate * tokens, "flops_per_s": rate * flops}
                if peak:
                    row["mfu"] = rate * flops / peak
                t_last, n_last = time.perf_counter(), n
            if every(n, tcfg.eval_every) or n == tcfg.steps or n == 1:
                row["eval_loss"] = float(eval_fn(state.params, state.frozen, g_eval))
                summary["eval_loss"].append((n, row["eval_loss"]))
            if row:
                log.log(n, row)
            if every(n, tcfg.sample_every):
                _sample(cfg, graphdef, state, parts, f"{workdir}/samples/step_{n:07d}", eval_host)
            if saving:
                ckpt.save(n, state.saved(), train_iter, meta={"loss": row["loss"], "frozen": frozen}, force=stopping)
            log.advance()
            if stopping:
                summary["status"] = "preempted"
                break
            if n < tcfg.steps:
                batch = encode(next(train_iter))
        ckpt.wait()
        summary["end_step"] = int(state.step)
        if summary["status"] == "done":
            _export(cfg, graphdef, state, vae, f"{workdir}/export")
    finally:
        stop.close()
        log.close()
        ckpt.close()
    return summary


def _sample(cfg: Config, graphdef, state, parts, out: str, example: dict) -> None:
    """A progress video from the EMA weights with the config's sample settings (text-free, seed 0). An
    image-to-video model starts from the first eval clip's first frame, a brush model follows its brushes."""
    from wanjax.io.export import to_uint8, write_sample
    from wanjax.sample import generate

    ema, frozen = to_host((state.ema, state.frozen))  # every process takes part in the gather; process 0 writes
    if jax.process_index() != 0:
        return
    context = jnp.zeros((1, 1, cfg.model.text_dim), jnp.float32)
    m = cfg.model
    given = cfg.train.cond_frames or m.in_channels != m.out_channels or m.image_dim is not None
    image = to_uint8(example["video"][:1, 0]) if given and "video" in example else None
    inputs = {} if image is None else image_inputs(cfg, parts.vae, parts.pipe, np.asarray(example["video"][:1]))
    motion = None
    if image is not None:  # the clip's size and length, whatever the sample settings say
        T, H, W = example["video"].shape[1:4]
        cfg = dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, frames=T, height=H, width=W))
    if image is not None and cfg.model.motion != "none":
        from wanjax.motion import compile_brushes
        from wanjax.motion.embed import motion_input

        motion = motion_input([compile_brushes(example["brushes"][0], max_tracks=cfg.sample.max_tracks)], cfg.vae)
    model = nnx.merge(graphdef, ema, frozen)
    frames, latents = generate(
        model, parts.vae, cfg, 0, context, image=image, motion=motion, progress=False,
        image_context=inputs.get("image_context"),
    )  # fmt: skip
    write_sample(out, frames[0], fps=cfg.sample.fps, meta={"step": int(state.step)}, latents=latents[0])


def _export(cfg: Config, graphdef, state, vae: nnx.Module, folder: str) -> None:
    """EMA weights + the frozen VAE as a sampling checkpoint (wanjax sample CONFIG --ckpt folder), with train.init's
    text / image encoders. LoRA adapters are folded into the weights, and also written apart, in diffusers' Wan LoRA
    layout (lora.safetensors)."""
    from wanjax.io.lora_params import export_lora
    from wanjax.io.weights import save_checkpoint
    from wanjax.model.lora import adapters, merge_lora

    params, frozen = to_host((state.ema, state.frozen))  # every process takes part in the gather; process 0 writes
    if jax.process_index() != 0:
        return
    ema = nnx.merge(graphdef, params, frozen)
    lora = adapters(ema)
    merge_lora(ema)
    init = None if cfg.train.init is None else Path(cfg.train.init)

    def write(local: Path) -> None:
        save_checkpoint(local, cfg, ema, vae, text_from=init)
        if lora:
            export_lora(lora, cfg.model, local / "lora.safetensors")

    if not folder.startswith("gs://"):
        write(Path(folder))
        return
    from wanjax.io.gcs import upload_files

    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "export")
        upload_files(sorted((Path(tmp) / "export").iterdir()), folder)


def _write_config(cfg: Config, workdir: str) -> None:
    """The run's settings as workdir/config.yaml (process 0), what `wanjax lora export RUN` rebuilds the run from."""
    import yaml
    from etils import epath

    if jax.process_index() == 0:
        path = epath.Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
