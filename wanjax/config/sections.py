"""The run's config sections (mesh, train, sample, data) and the whole `Config`, frozen dataclasses with defaults
and validation; the architecture's (model, vae) and their presets are `wanjax.config.architecture`.

    Config(model=ModelConfig.wan21_t2v_1_3b()).validate()

Loading them from YAML and `key=value` overrides is `wanjax.config.load`.
"""

from __future__ import annotations

import dataclasses
import re

from wanjax.config.architecture import ModelConfig, VAEConfig, _choice, check_frame_count
from wanjax.errors import WanjaxError


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh ('data', 'fsdp', 'ring', 'tensor'): ICI sizes within a slice, DCN sizes across slices.

    -1 = fill with the remaining devices (at most one axis). `segment_frames` latent frames form one
    attention segment; ring attention pads a segment count the ring size does not divide.
    """

    data: int = 1
    fsdp: int = -1
    ring: int = 1
    tensor: int = 1
    dcn_data: int = 1
    dcn_fsdp: int = 1
    dcn_ring: int = 1
    dcn_tensor: int = 1
    attention: str = "auto"  # auto | dense | flash | sdpa | blockwise | ring (see AttnSpec.from_config)
    segment_frames: int = 1
    block_size: int = 512  # blockwise/ring inner block (tokens)

    def validate(self) -> None:
        _choice("mesh.attention", self.attention, ("auto", "dense", "flash", "sdpa", "blockwise", "ring"))
        if self.segment_frames < 1:
            raise WanjaxError(f"mesh.segment_frames={self.segment_frames}: must be >= 1")


# Every projection of the attention (self, cross, image keys / values) and the FFN, as ai-toolkit / diffusers train
LORA_TARGETS = r"^blocks/(attn1|attn2)/(to_q|to_k|to_v|to_out|add_k_proj|add_v_proj)$|^blocks/ffn/(fc_in|fc_out)$"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    workdir: str = "runs/default"
    steps: int = 20000
    batch_size: int = 8
    lr: float = 1.0e-4
    warmup_steps: int = 500
    lr_schedule: str = "cosine"  # cosine | constant
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    adam_b2: float = 0.999  # Adam's second-moment decay (0.95: faster to follow short, noisy runs)
    grad_accum: int = 1  # micro-batches per optimizer step
    timestep_sampling: str = "logit_normal"  # uniform | logit_normal (SD3/Wan), then shifted
    loss: str = "velocity"  # velocity (Wan) | sample: the clean-sample error, velocity error x sigma² (every noise
    # level weighs alike; with a residual base the head learns to add nothing where it cannot know better)
    shift: float = 1.0  # training sigma shift (sigma' = shift s / (1 + (shift - 1) s))
    per_segment_prob: float = 0.0  # diffusion forcing: P(independent noise level per segment) per example
    causal_prob: float = 0.0  # share of steps trained for pyramid sampling: causal segment mask, noise per segment
    # Correlation between any two latent frames' noise (a shared part, PYoCo-style mixed noise; 0 = Wan's independent
    # noise). sample.noise_correlation must match it.
    noise_correlation: float = 0.0
    cond_frames: int = 0  # leading latent frames given clean (timestep 0, no loss): 1 = image-to-video
    motion_dropout: float = 0.1  # P(an example's brushes are dropped): the unconditional branch of motion CFG
    max_tracks: int = 256  # track points per clip compiled from its brushes (static shape)
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at step n, so the random init fades
    checkpoint_every: int = 500  # 0 = only at the end (and on preemption)
    keep: int = 3
    eval_every: int = 500  # 0 = only after the first and the last step
    sample_every: int = 0  # write a sample video (EMA weights, sample: settings) every N steps; 0 = never
    log_every: int = 1
    seed: int = 0
    resume: bool = True
    # Fine-tuning. init: the weights to start from (a diffusers Wan pipeline folder, or a wanjax
    # checkpoint); the model is built from this config, parameters it adds (the motion branch, adapters) keep
    # their init, and the checkpoint's VAE (and CLIP image encoder) make the data. A resumed run ignores it.
    init: str | None = None
    # Parameters that train: a regex searched in each '/'-joined path (blocks/attn1/to_q/kernel); None = all, or
    # with LoRA the adapters only. The others are frozen: no gradient, no optimizer state, no EMA.
    trainable: str | None = None
    lora_rank: int = 0  # > 0: low-rank adapters on the layers lora_targets matches (wanjax.model.lora)
    lora_alpha: float | None = None  # adapter scale alpha / rank; None = rank (scale 1)
    lora_targets: str = LORA_TARGETS  # regex searched in each linear layer's path

    def validate(self) -> None:
        for key in ("trainable", "lora_targets"):
            try:
                re.compile(getattr(self, key) or "")
            except re.error as e:
                raise WanjaxError(f"train.{key}={getattr(self, key)!r} is not a regular expression ({e})") from None
        if self.lora_rank < 0 or (self.lora_alpha is not None and self.lora_alpha <= 0):
            raise WanjaxError(
                f"train.lora_rank={self.lora_rank}, train.lora_alpha={self.lora_alpha}: need rank >= 0 (0 = no "
                "LoRA) and alpha > 0 (e.g. rank 16, alpha 16)"
            )
        _choice("train.lr_schedule", self.lr_schedule, ("cosine", "constant"))
        _choice("train.timestep_sampling", self.timestep_sampling, ("uniform", "logit_normal"))
        _choice("train.loss", self.loss, ("velocity", "sample"))
        if self.grad_accum < 1:
            raise WanjaxError(f"train.grad_accum={self.grad_accum}: must be >= 1")
        if self.log_every < 1:
            raise WanjaxError(f"train.log_every={self.log_every}: must be >= 1 (steps between metrics rows)")
        for key in ("checkpoint_every", "eval_every", "sample_every"):
            if getattr(self, key) < 0:
                raise WanjaxError(f"train.{key}={getattr(self, key)}: must be >= 0 (0 = never in between)")
        if not 0.0 <= self.adam_b2 < 1.0:
            raise WanjaxError(f"train.adam_b2={self.adam_b2}: must be in [0, 1), e.g. 0.999 or 0.95")
        for key in ("per_segment_prob", "causal_prob", "motion_dropout"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise WanjaxError(f"train.{key}={getattr(self, key)}: a probability in [0, 1]")
        check_correlation("train.noise_correlation", self.noise_correlation)


def check_correlation(key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise WanjaxError(f"{key}={value}: a correlation in [0, 1) (0 = independent noise per frame; e.g. 0.5)")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    frames: int = 81  # video frames, 4k+1
    height: int = 480
    width: int = 832
    steps: int = 30
    solver: str = "unipc"  # euler | unipc
    shift: float = 5.0
    # wan: Wan's / diffusers' flow-UniPC sigmas (linspace(1, 1/1000)) and integer model timesteps, as the real
    # checkpoints sample; continuous: linspace(1, 0) and 1000 sigma as is (what the toy models trained with)
    timesteps: str = "wan"
    schedule: str = "synchronous"  # synchronous | pyramid | chained
    lag: int = 2
    # pyramid: latent frames per segment when sampling (the causal mask's blocks and the stagger); None =
    # mesh.segment_frames, the segments the model trained with. Shorter ones start the clip from frame 0 in
    # smaller steps (Sprites60: 2 with a model trained on 8; bench/recipe.md)
    segment_frames: int | None = None
    kv_cache: bool = True  # pyramid: finished segments' K/V cached, not recomputed (dense attention, no brushes)
    window: int = 21
    overlap: int = 5
    guidance_text: float = 5.0
    guidance_text_2: float | None = None  # two experts (Wan2.2 A14B): the low-noise expert's; None = guidance_text
    # Two experts: the first (transformer/) denoises while the timestep is >= boundary_ratio x 1000, the second
    # (transformer_2/) after; None = the checkpoint's own (model_index.json), else one model throughout
    boundary_ratio: float | None = None
    # Two experts, one on the devices at a time: the other waits in host memory (memory kind pinned_host) and they
    # trade places at the boundary step (two 14B experts in bf16 need 57 GB; one needs half)
    expert_offload: bool = False
    guidance_motion: float = 1.0
    motion_strength: float = 1.0  # scales the brushes' contribution to the patch tokens
    apply_steps: tuple[int, int] | None = None  # motion only in sampler steps [a, b); None = every step
    max_tracks: int = 256  # track points compiled from a brush file (static shape)
    fps: int = 16
    seed: int = 0
    noise_correlation: float = 0.0  # the starting noise's correlation between latent frames: the model's train value
    text_tokens: int = 512  # --prompt: tokens the text encoder sees (Wan: 512; padding zeroed)
    # The weights `wanjax sample` uses without --ckpt: a bundled checkpoint (a folder under wanjax/assets: demo,
    # sprites60) or a checkpoint folder's path; None: the bundled demo one.
    checkpoint: str | None = None

    def validate(self) -> None:
        check_frame_count(self.frames, "sample.frames")
        if self.text_tokens < 2:
            raise WanjaxError(f"sample.text_tokens={self.text_tokens}: need >= 2 (a token and </s>; Wan uses 512)")
        if self.apply_steps is not None and not 0 <= self.apply_steps[0] <= self.apply_steps[1] <= self.steps:
            raise WanjaxError(
                f"sample.apply_steps={list(self.apply_steps)}: need 0 <= a <= b <= sample.steps={self.steps} "
                f"(e.g. [0, {self.steps // 2}])"
            )
        _choice("sample.solver", self.solver, ("euler", "unipc"))
        if self.segment_frames is not None and self.segment_frames < 1:
            raise WanjaxError(f"sample.segment_frames={self.segment_frames}: must be >= 1 (or null: the mesh one)")
        check_correlation("sample.noise_correlation", self.noise_correlation)
        _choice("sample.schedule", self.schedule, ("synchronous", "pyramid", "chained"))
        _choice("sample.timesteps", self.timesteps, ("wan", "continuous"))
        if self.boundary_ratio is not None and not 0 < self.boundary_ratio < 1:
            raise WanjaxError(f"sample.boundary_ratio={self.boundary_ratio}: need 0 < ratio < 1 (Wan2.2: 0.875, 0.9)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training data: a procedural set (built once into data_dir as TFDS array_record) or cached real video."""

    name: str = "brushsprites"  # brushsprites | sprites60 | video_latents
    data_dir: str = "data"
    frames: int = 17
    height: int = 64
    width: int = 64
    train_clips: int = 2000
    eval_clips: int = 200
    stream: bool = False  # procedural sets: generate every training clip on the fly, never one twice (data/stream.py)
    workers: int = 0  # with stream: Grain worker processes generating clips (0 = the training process's threads)
    # model.residual=warp on a built brush set: each clip's warp guide computed once, stored in data_dir/guides and
    # read with the clip, instead of computed in every train step (wanjax.train.guides; float16 rounding). Where it
    # does not apply (data.stream, a gs:// data_dir, a model without the guide) the step computes the guide:
    # Config.stores_guides
    cache_guide: bool = False
    # video_latents: point tracks stored per clip (`wanjax data build`): track_points rows, of which up to
    # track_reseed are started after frame 0 where tracks were lost (wanjax.motion.tracking); the rest a frame-0 grid
    track_points: int = 1024
    track_reseed: int = 256
    # Training on them (wanjax.data.track_sampling): tracks per clip drawn uniformly in [a, b] (None: as many as
    # train.max_tracks holds), their least distance in frame 0 (px), and the chance a track is hidden at a frame
    track_count: tuple[int, int] | None = None
    track_spread: float = 0.0
    track_dropout: float = 0.0

    def validate(self) -> None:
        _choice("data.name", self.name, ("brushsprites", "sprites60", "video_latents"))
        check_frame_count(self.frames, "data.frames")
        if self.stream and self.name == "video_latents":
            raise WanjaxError("data.stream=true generates procedural clips; video_latents is built ahead: set it false")
        if self.workers < 0:
            raise WanjaxError(f"data.workers={self.workers} must be >= 0 (0 = no worker processes)")
        if not 0 <= self.track_reseed < self.track_points:
            raise WanjaxError(
                f"data.track_points={self.track_points}, data.track_reseed={self.track_reseed}: need 0 <= reseed < "
                "points (e.g. 1024 and 256)"
            )
        if self.track_count is not None and not 1 <= self.track_count[0] <= self.track_count[1]:
            raise WanjaxError(f"data.track_count={list(self.track_count)}: need [a, b] with 1 <= a <= b, e.g. [1, 200]")
        if self.track_spread < 0 or not 0 <= self.track_dropout < 1:
            raise WanjaxError(
                f"data.track_spread={self.track_spread}, data.track_dropout={self.track_dropout}: need spread >= 0 "
                "(px) and dropout in [0, 1)"
            )


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    vae: VAEConfig = VAEConfig()
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()
    sample: SampleConfig = SampleConfig()
    data: DataConfig = DataConfig()

    def validate(self) -> Config:
        for section in dataclasses.fields(self):
            getattr(self, section.name).validate()
        return self

    @property
    def stores_guides(self) -> bool:
        """Whether training reads each clip's warp guide from the data (data.cache_guide, `wanjax.train.guides`):
        where there is a guide (model.residual=warp with brushes) and a built procedural set in a local data_dir to
        store it with (the table is memory-mapped); with data.stream, a gs:// data_dir or a model without the guide,
        the step computes what it needs."""
        d, m = self.data, self.model
        built = not d.stream and d.name != "video_latents" and "://" not in d.data_dir
        return d.cache_guide and built and m.residual == "warp" and m.motion != "none"

    @property
    def sample_segment_frames(self) -> int:
        """Latent frames per pyramid segment when sampling: sample.segment_frames, else mesh.segment_frames."""
        return self.sample.segment_frames or self.mesh.segment_frames

    def check_parts(self) -> None:
        """Where a DiT and a VAE work together (sampling, a checkpoint's parts), they must fit: the DiT's output
        channels are the VAE's latent channels, and extra input channels are an image-to-video condition (a mask
        of temporal-stride channels + the image latent)."""
        m, z, ts = self.model, self.vae.z_dim, self.vae.temporal_stride
        if m.out_channels != z:
            raise WanjaxError(
                f"model.out_channels={m.out_channels} but vae.z_dim={z}: the DiT and the VAE belong to different "
                "models (e.g. a Wan2.2-TI2V-5B DiT needs the Wan2.2 VAE)"
            )
        if m.in_channels not in (m.out_channels, m.out_channels + ts + z):
            raise WanjaxError(
                f"model.in_channels={m.in_channels}: expected {m.out_channels} (text- or clean-first-frame "
                f"image-to-video) or {m.out_channels + ts + z} (noise + {ts} mask + {z} image latent channels)"
            )
