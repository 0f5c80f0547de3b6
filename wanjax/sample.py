"""Generate a video: noise -> sampler loop over the DiT -> VAE decode -> sample files.

`generate` is the library function; `run_sample` is what `wanjax sample` and `wanjax demo` call.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import Config, SampleConfig, check_frame_count, config_to_dict, load_config
from wanjax.diffusion.conditioning import channel_condition, expert_switch
from wanjax.diffusion.flow import frame_noise
from wanjax.diffusion.samplers import guidance_weights, sample
from wanjax.diffusion.schedules import attention_mask, chained_windows, pyramid, pyramid_windows, synchronous
from wanjax.diffusion.velocity import cached_velocity_fn, velocity_fn
from wanjax.errors import WanjaxError
from wanjax.io.export import to_uint8, write_sample
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.model.motion import Motion
from wanjax.model.pixel import make_vae
from wanjax.motion.embed import motion_input
from wanjax.parallel.distributed import replicated, to_host
from wanjax.parallel.mesh import maybe_initialize_distributed
from wanjax.parallel.partition import place, shard_module
from wanjax.sample_inputs import image_tokens, read_frames, require_image

ASSETS = Path(__file__).parent / "assets"
DEMO_CHECKPOINT = ASSETS / "demo"


def default_checkpoint(name: str | None) -> Path | None:
    """The checkpoint `sample.checkpoint` names: a bundled one (a folder under wanjax/assets) or a path; None: the
    bundled demo checkpoint, or None (random weights) in an install without it."""
    if name is None:
        return DEMO_CHECKPOINT if DEMO_CHECKPOINT.is_dir() else None
    for path in (ASSETS / name, Path(name)):
        if path.is_dir():
            return path
    bundled = sorted(p.name for p in ASSETS.iterdir() if p.is_dir()) if ASSETS.is_dir() else []
    raise WanjaxError(
        f"sample.checkpoint={name} is neither a bundled checkpoint ({', '.join(bundled) or 'none here'}) nor a "
        "folder; fix the name or pass --ckpt DIR"
    )


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
    return (scfg.frames - 1) // ts + 1, scfg.height // ss, scfg.width // ss, cfg.model.out_channels


def generate(
    dit: WanDiT,
    vae: nnx.Module,
    cfg: Config,
    seed: int,
    context: jax.Array,
    *,
    image: np.ndarray | None = None,
    last_image: np.ndarray | None = None,
    image_context: jax.Array | None = None,
    motion: Motion | None = None,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
    noise: jax.Array | None = None,
    expert_2: WanDiT | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flow-matching sampling of B videos -> (frames uint8 [B, T, H, W, 3], latents [B, F, h, w, C]).

    The whole clip is one sequence, denoised with sample.schedule (`wanjax.diffusion.schedules`): synchronous,
    pyramid (segments of sample.segment_frames latent frames, sample.lag steps apart, causal attention) or chained
    (the baseline: sample.window-frame windows, each started from sample.overlap clean frames of the last).
    context [B, M, text_dim] (zeros: no text). image uint8 [B, H, W, 3]: image-to-video (wanjax.diffusion.
    conditioning): a model with condition channels (Wan2.1-I2V, Wan2.2-I2V-A14B) reads [mask, image latent] beside
    the noise, with last_image too (first-last-frame); otherwise latent frame 0 is the image's latent, clean (sigma
    0) at every step. image_context [B, I, image_dim]: CLIP image tokens (Wan2.1-I2V / FLF2V). noise: the
    starting latents [B, F, h, w, C] (default: drawn from seed). expert_2: Wan2.2 A14B's low-noise expert, used from
    the step whose timestep falls below sample.boundary_ratio x 1000, with sample.guidance_text_2 (with
    sample.expert_offload the expert not in use waits in host memory). motion: brush tracks of the B videos,
    injected in sampler steps sample.apply_steps with sample.motion_strength and guided with sample.guidance_motion
    (text guidance only applies with text, i.e. a non-zero context). mesh: attention and activations sharded over
    it (frames over 'ring': mesh.attention 'auto' runs ring attention when the ring axis is > 1)."""
    scfg = cfg.sample
    cfg.check_parts()  # the DiT and the VAE fit each other
    shape = latent_shape(scfg, cfg)
    B, F = context.shape[0], shape[0]
    x = frame_noise(jax.random.key(seed), (B, *shape), scfg.noise_correlation) if noise is None else jnp.asarray(noise)
    clean = np.zeros(F, bool)  # conditioning frames: sigma 0 throughout
    condition = None
    if cfg.model.in_channels != cfg.model.out_channels:
        if image is None:
            raise WanjaxError("this is an image-to-video model (condition channels): give the first frame, --image")
        condition = channel_condition(vae.encode, image, last_image, scfg.frames, cfg.vae.temporal_stride)
    elif last_image is not None:
        raise WanjaxError("--last-image needs a model with condition channels (Wan2.1-FLF2V/I2V, Wan2.2-I2V-A14B)")
    elif image is not None:
        first = vae.encode(jnp.asarray(image, jnp.float32)[:, None] / 127.5 - 1.0)  # [B, 1, h, w, C]
        x = x.at[:, 0].set(first[:, 0])
        clean[0] = True
    if cfg.model.image_dim is not None and image_context is None:
        raise WanjaxError("this model reads CLIP image tokens: its checkpoint needs image_encoder/ + image_processor/")
    if scfg.schedule == "chained" and motion is not None:
        raise WanjaxError("brushes need sample.schedule=synchronous or pyramid (chained windows restart the clip)")
    has_text = bool(np.any(np.asarray(context)))
    branches = guidance_weights(has_text, motion is not None, scfg.guidance_text, scfg.guidance_motion)
    a, b = scfg.apply_steps or (0, scfg.steps)
    if motion is not None:
        motion = jax.tree.map(jnp.asarray, motion.replace(strength=np.full(B, scfg.motion_strength, np.float32)))
    if mesh is not None:
        for model in (dit, expert_2):
            if model is not None:
                shard_module(model, mesh)  # in place: the weights by their logical axes (FSDP / tensor)
        # Global arrays, so that the mesh may span processes (every process computed the same noise and inputs).
        x, context, motion, condition, image_context = replicated((x, context, motion, condition, image_context), mesh)
    graphdef, params = nnx.split(dit)
    mask = attention_mask(scfg.schedule)
    attn = AttnSpec.from_config(cfg.mesh, mesh, mask=mask)
    attn = dataclasses.replace(attn, segment_frames=cfg.sample_segment_frames)
    integer_t = scfg.timesteps == "wan"

    def branch_inputs(branches):
        branches = tuple(branches)
        ctx = jnp.concatenate([context if text else jnp.zeros_like(context) for text, _, _ in branches])
        return branches, ctx

    branches, ctx = branch_inputs(branches)
    velocity = velocity_fn(graphdef, branches, B, attn, a, b, integer_t)
    # arrays as arguments, not constants: a new prompt or seed compiles nothing
    inputs = (params, ctx, motion, condition, image_context)
    switch = None
    if expert_2 is not None:
        g2 = scfg.guidance_text if scfg.guidance_text_2 is None else scfg.guidance_text_2
        branches_2, ctx_2 = branch_inputs(guidance_weights(has_text, motion is not None, g2, scfg.guidance_motion))
        graphdef_2 = nnx.graphdef(expert_2)
        switch = (velocity_fn(graphdef_2, branches_2, B, attn, a, b, integer_t), ctx_2)
        if scfg.expert_offload:
            if scfg.schedule != "synchronous":
                raise WanjaxError("sample.expert_offload moves each expert once: use sample.schedule=synchronous")
            place(expert_2, "pinned_host")

    def second_expert(inputs):
        """The second expert's inputs at its first step; with sample.expert_offload, the first expert goes to host
        memory and the second to the devices first (one expert's weights on the devices at a time)."""
        if scfg.expert_offload:
            place(dit, "pinned_host")
            place(expert_2, "device")
        return (nnx.state(expert_2), switch[1], *inputs[2:])

    def denoise(x, sigmas, keep, velocity=velocity, inputs=inputs, carry=None):
        sigmas[:, keep] = 0.0
        after = None
        if switch is not None:
            if scfg.boundary_ratio is None:
                raise WanjaxError("two experts need sample.boundary_ratio (Wan2.2 A14B: T2V 0.875, I2V 0.9)")
            after = (expert_switch(sigmas, scfg.boundary_ratio), switch[0], functools.partial(second_expert, inputs))
        return sample(velocity, inputs, x, sigmas, progress, scfg.solver, carry, after)

    if scfg.schedule == "chained":
        for i, (start, stop) in enumerate(chained_windows(F, scfg.window, scfg.overlap)):
            keep = clean[start:stop].copy()
            keep[: scfg.overlap if i else 0] = True  # the previous window's last frames, already denoised
            sigmas = synchronous(scfg.steps, scfg.shift, stop - start, scfg.timesteps)
            window = x[:, start:stop]
            cond = None if condition is None else condition[:, start:stop]
            x = x.at[:, start:stop].set(denoise(window, sigmas, keep, inputs=(*inputs[:3], cond, inputs[4])))
        latents = x
    elif scfg.schedule == "pyramid":
        sigmas = pyramid(scfg.steps, scfg.shift, F, cfg.sample_segment_frames, scfg.lag, scfg.timesteps)
        # The cache needs dense attention (over the window's queries and every key before them): one device.
        cached = (
            (motion is None and condition is None and image_context is None and not cfg.model.first_frame_concat)
            and cfg.model.residual != "warp"
            and attn.impl in ("dense", "flash", "blockwise")
        )
        if scfg.kv_cache and cached and cfg.model.patch_size[0] == 1:
            sigmas[:, clean] = 0.0
            starts, length = pyramid_windows(sigmas, cfg.sample_segment_frames)
            S = shape[1] // cfg.model.patch_size[1] * (shape[2] // cfg.model.patch_size[2])
            m = cfg.model
            cache = jnp.zeros((m.num_layers, len(branches) * B, F * S, m.num_heads, m.head_dim), m.dtype)
            cache = cache if mesh is None else replicated(cache, mesh)
            velocity = cached_velocity_fn(
                graphdef, branches, B, dataclasses.replace(attn, impl="dense"), S, length, integer_t
            )
            latents = denoise(x, sigmas, clean, velocity, (*inputs[:3], jnp.asarray(starts)), (cache, cache))
        else:
            latents = denoise(x, sigmas, clean)
    else:
        latents = denoise(x, synchronous(scfg.steps, scfg.shift, F, scfg.timesteps), clean)
    if expert_2 is not None and scfg.expert_offload:  # back as they came: the first on the devices, the second not
        place(expert_2, "pinned_host")
        place(dit, "device")
    # Over a mesh that spans processes, a collective: every process gathers the whole clip.
    latents = np.asarray(latents) if mesh is None else to_host(latents)
    video = vae.decode(jnp.asarray(latents))
    return np.stack([to_uint8(v) for v in video]), latents


def run_sample(
    config: str | Path | None,
    out: str | Path,
    *,
    ckpt: str | Path | None = None,
    seed: int | None = None,
    prompt: str | None = None,
    image: str | Path | None = None,
    brush: str | Path | dict | None = None,
    overrides: list[str] = (),
    name: str = "sample",
    last_image: str | Path | None = None,
    loras: list[tuple[str, float]] = (),
) -> dict[str, Path]:
    """Load, generate, write OUT/NAME.{mp4,gif,png,npz,json} (+ NAME_overlay.{png,gif,mp4} with brushes).

    image: first frame (image-to-video); its size sets sample.height/width. last_image: the last frame too (a model
    with condition channels: Wan2.1-FLF2V/I2V, Wan2.2-I2V-A14B), of the same size. brush: a brush file painted on
    the image; its frame count sets sample.frames. An explicit sample.* override that contradicts either is an
    error. The checkpoint gives the architecture, its second expert and boundary ratio (unless sample.boundary_ratio
    is set) and CLIP image tokens of the images (a DiT with model.image_dim). Without a checkpoint (none given,
    none bundled): random weights. loras: (LoRA file, scale) pairs folded into the DiT's weights
    (wanjax.io.lora_params: diffusers / PEFT, kohya and original-Wan layouts)."""
    if brush is not None and image is None:
        raise WanjaxError("--brush needs --image: brushes are painted on the first frame the video starts from")
    maybe_initialize_distributed()  # one of several processes (`wanjax launch`, a pod): join the job first
    cfg = load_config(config, overrides)
    explicit = {o.split("=", 1)[0].strip() for o in overrides}
    first, last = read_frames(image, last_image)
    brushes = None
    if first is not None:
        cfg = _fit(cfg, explicit, {"height": first.shape[0], "width": first.shape[1]}, f"--image {image}")
    if brush is not None:
        from wanjax.motion import load_brushes

        brushes = load_brushes(brush, size=(first.shape[1], first.shape[0]))
        cfg = _fit(cfg, explicit, {"frames": brushes["frames"]}, f"--brush {brush}")
    ckpt = Path(ckpt) if ckpt is not None else default_checkpoint(cfg.sample.checkpoint)
    t0 = time.perf_counter()
    pipe = None
    if ckpt is None:
        dit, vae = WanDiT(cfg.model, rngs=nnx.Rngs(0)), make_vae(cfg.vae, nnx.Rngs(1))
    else:
        from wanjax.io.weights import load_pipeline

        pipe = load_pipeline(ckpt)  # the checkpoint's architecture wins over CONFIG's
        dit, vae = pipe.dit, pipe.vae
        ratio = pipe.boundary_ratio if cfg.sample.boundary_ratio is None else cfg.sample.boundary_ratio
        sample = dataclasses.replace(cfg.sample, boundary_ratio=ratio)
        cfg = dataclasses.replace(cfg, model=pipe.cfg.model, vae=pipe.cfg.vae, sample=sample)
    cfg.validate().check_parts()  # the DiT and the VAE fit each other
    if loras:
        from wanjax.io.lora_params import apply_lora

        for path, scale in loras:
            apply_lora(dit, path, scale)
    require_image(cfg.model, str(ckpt or "the random-init model"), first)
    if first is not None:  # the image's size must fit the latent grid: say so before any work
        try:
            latent_shape(dataclasses.replace(cfg.sample, frames=1), cfg)
        except WanjaxError as e:
            size = f"{first.shape[1]}x{first.shape[0]}"
            raise WanjaxError(f"--image {image} is {size} pixels: {e} (resize or crop the image)") from None
    if brushes is not None and cfg.model.motion == "none":
        raise WanjaxError(
            f"--brush: the model ({ckpt or 'random init'}) has no motion input (model.motion=none); use a brush "
            "model, e.g. the bundled one: wanjax sample configs/brushsprites.yaml --image ... --brush ..."
        )
    seed = cfg.sample.seed if seed is None else seed
    context = jnp.zeros((1, 1, cfg.model.text_dim), jnp.float32)  # no prompt: text-free
    if prompt:
        context = _encode_prompt(prompt, ckpt, cfg)
    t_load = time.perf_counter()
    tracks, motion = None, None
    if brushes is not None:
        from wanjax.motion import compile_brushes

        tracks = compile_brushes(brushes, max_tracks=cfg.sample.max_tracks)
        motion = motion_input([tracks], cfg.vae)
    mesh = None
    if cfg.mesh.ring > 1:  # a long clip as one sequence, its frames sharded over the ring (ring attention)
        from wanjax.parallel.mesh import make_mesh

        mesh = make_mesh(cfg.mesh)
    image_context, expert_2 = None, None
    if pipe is not None:
        expert_2 = pipe.expert_2
        if pipe.clip is not None:
            image_context = image_tokens(pipe.clip, pipe.image_processor, cfg.model, first, last)
    start, end = (None if a is None else a[None] for a in (first, last))
    frames, latents = generate(dit, vae, cfg, seed, context, image=start, last_image=end, image_context=image_context,
                               motion=motion, mesh=mesh, expert_2=expert_2)  # fmt: skip
    frames, latents = frames[0], latents[0]
    t_done = time.perf_counter()
    if jax.process_index() != 0:  # one clip, sampled by all processes together: process 0 writes it
        return {}
    meta = {
        "config": config_to_dict(cfg),
        "checkpoint": str(ckpt) if ckpt else "random init (no checkpoint)",
        "seed": seed,
        "prompt": prompt,
        "image": None if image is None else str(image),
        "last_image": None if last_image is None else str(last_image),
        "brushes": brushes,
        "frames": list(frames.shape),
        "timings_s": {"load": round(t_load - t0, 3), "generate": round(t_done - t_load, 3)},
        "devices": [str(d) for d in jax.devices()],
        "mesh": None if mesh is None else dict(mesh.shape),
    }
    extras = None
    if tracks is not None:
        from wanjax.motion.draw import overlay_brushes, overlay_video

        extras = {"overlay.png": overlay_brushes(first, brushes, tracks)}
        video = overlay_video(frames, tracks)
        extras |= {"overlay.gif": video, "overlay.mp4": video}
    return write_sample(out, frames, fps=cfg.sample.fps, meta=meta, latents=latents, name=name, extras=extras)


def _encode_prompt(prompt: str, ckpt: Path | None, cfg: Config) -> jax.Array:
    """The prompt through the checkpoint's own UMT5 encoder and tokenizer, in JAX -> context [1, M, text_dim]."""
    from wanjax.io.weights import load_text
    from wanjax.model.text import encode_prompts

    text = None if ckpt is None else load_text(ckpt, dtype=cfg.model.dtype)
    if text is None:
        raise WanjaxError(
            f"--prompt: {ckpt or 'the random-init model'} has no text encoder; use a checkpoint with text_encoder/ + "
            "tokenizer/ (a Wan2.1 diffusers folder, or what `wanjax convert` made of one), or sample without --prompt"
        )
    encoder, tokenizer = text
    if encoder.cfg.d_model != cfg.model.text_dim:
        raise WanjaxError(
            f"--prompt: {ckpt}'s text encoder gives {encoder.cfg.d_model}-d states but the DiT reads "
            f"model.text_dim={cfg.model.text_dim}; the text_encoder/ folder belongs to another model"
        )
    return encode_prompts(encoder, tokenizer, [prompt], cfg.sample.text_tokens)


def _fit(cfg: Config, explicit: set[str], values: dict[str, int], source: str) -> Config:
    """Sample settings taken from the inputs (image size, brush frame count), unless overridden differently."""
    for key, value in values.items():
        if f"sample.{key}" in explicit and getattr(cfg.sample, key) != value:
            raise WanjaxError(
                f"sample.{key}={getattr(cfg.sample, key)} contradicts {source} ({key} {value}); drop the override "
                f"or use an input of that {key}"
            )
    cfg = dataclasses.replace(cfg, sample=dataclasses.replace(cfg.sample, **values))
    return cfg.validate()
