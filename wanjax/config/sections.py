"""The config sections as frozen dataclasses with defaults and validation, and the named presets.

    ModelConfig.tiny(), Config(model=ModelConfig.wan21_t2v_1_3b()).validate()

Loading them from YAML and `key=value` overrides is `wanjax.config.load`.
"""

from __future__ import annotations

import dataclasses

from wanjax.errors import WanjaxError


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Wan DiT architecture (diffusers `WanTransformer3DModel` fields; nothing about steps or guidance)."""

    dim: int = 1536
    ffn_dim: int = 8960
    num_heads: int = 12
    num_layers: int = 30
    in_channels: int = 16
    out_channels: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096
    freq_dim: int = 256
    eps: float = 1e-6
    cross_attn_norm: bool = True
    rope_max_seq_len: int = 1024
    rope_theta: float = 10000.0
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    remat: str = "none"  # none | full | dots: what the scanned blocks save for backward
    # Motion brushes (wanjax.motion.embed): none | splat (sparse trajectory embeddings) | latent_copy (Wan-Move
    # baseline: the first-frame latent copied along each track). Added through a zero-initialised projection.
    motion: str = "none"
    # Image-to-video: each latent frame's patch also sees latent frame 0 (the clean image), channel-concatenated
    # (Wan2.1-I2V's input concat, here inside the DiT): copying what does not move becomes a per-token map.
    first_frame_concat: bool = False
    # What proj_out predicts: velocity (Wan) or sample, the clean latent x0 (Li & He 2025, "Back to Basics: Let
    # Denoising Generative Models Denoise"): a patch far wider than the model (the toy pixel codec: 768 values
    # per token, dim 128) cannot pass the noise through a narrow stream, its clean content can. The DiT still
    # returns a velocity, v = (x_t - x0) / max(sigma, 0.05), so losses and samplers are the same.
    prediction: str = "velocity"
    # Clean-sample residual (toy-model trick, prediction=sample only): x0 = base + proj_out(h) with proj_out
    # zero-initialised, so step 0 already outputs the base. none | first_frame (latent frame 0 everywhere: what
    # does not move is free) | warp (frame 0 moved along the brush tracks at pixel resolution, wanjax.model.guide;
    # the pixel codec's latents; the guide is also channel-concatenated to the patch input).
    residual: str = "none"
    motion_dim: int = 16  # channels of a track's embedding
    motion_subframes: int = 4  # video frames per latent frame (the VAE's temporal stride): one splat each
    motion_sigma: float = 0.7  # splat Gaussian radius in latent cells (>= 0.7: position bias of the sampled
    # Gaussian < 1e-3 cell, so the map encodes sub-cell positions faithfully)
    # Wan2.1-I2V / FLF2V image branch (diffusers fields): CLIP image tokens [B, 257 (FLF2V: 514), image_dim] are
    # embedded (norm, GELU FFN, norm; plus a learned position table of pos_embed_seq_len rows for two images) and
    # read by every cross-attention through its own key/value projections (added_kv_proj_dim = dim).
    image_dim: int | None = None
    added_kv_proj_dim: int | None = None
    pos_embed_seq_len: int | None = None

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def guide_pixel_size(self) -> int | None:
        """s when in_channels = motion_subframes x 3 x s² (the pixel codec's latents), else None."""
        area, rest = divmod(self.in_channels, 3 * self.motion_subframes)
        s = round(area**0.5)
        return s if not rest and s * s == area and self.out_channels == self.in_channels else None

    def validate(self) -> None:
        if self.dim % self.num_heads:
            raise WanjaxError(f"model.dim={self.dim} is not divisible by model.num_heads={self.num_heads}")
        if self.head_dim % 2 or self.head_dim < 6:
            raise WanjaxError(f"model.dim/num_heads = {self.head_dim}: head dim must be even and >= 6 (3-axis RoPE)")
        _choice("model.remat", self.remat, ("none", "full", "dots"))
        _choice("model.dtype", self.dtype, ("float32", "bfloat16", "float16"))
        _choice("model.param_dtype", self.param_dtype, ("float32", "bfloat16"))
        _choice("model.motion", self.motion, ("none", "splat", "latent_copy"))
        _choice("model.prediction", self.prediction, ("velocity", "sample"))
        _choice("model.residual", self.residual, ("none", "first_frame", "warp"))
        if self.residual != "none" and self.prediction != "sample":
            raise WanjaxError(f"model.residual={self.residual} needs model.prediction=sample (it adds to x0)")
        if (self.image_dim is None) != (self.added_kv_proj_dim is None):
            raise WanjaxError(
                f"model.image_dim={self.image_dim} and model.added_kv_proj_dim={self.added_kv_proj_dim}: set both "
                "(an image-conditioned Wan2.1 model, added_kv_proj_dim = dim) or neither"
            )
        if self.added_kv_proj_dim is not None and self.added_kv_proj_dim != self.dim:
            raise WanjaxError(
                f"model.added_kv_proj_dim={self.added_kv_proj_dim} must equal model.dim={self.dim} (the image "
                "tokens are embedded to dim before the added key/value projections)"
            )
        if self.pos_embed_seq_len is not None and self.image_dim is None:
            raise WanjaxError("model.pos_embed_seq_len is the image branch's position table: it needs model.image_dim")
        if self.residual == "warp" and self.guide_pixel_size is None:
            raise WanjaxError(
                f"model.residual=warp needs the pixel codec's latents: in_channels = motion_subframes x 3 x s² "
                f"(e.g. 192 = 4 x 3 x 4²), got in_channels={self.in_channels}, motion_subframes={self.motion_subframes}"
            )

    @classmethod
    def wan21_t2v_1_3b(cls) -> ModelConfig:
        return cls(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)

    @classmethod
    def wan21_t2v_14b(cls) -> ModelConfig:
        return cls(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)

    @classmethod
    def wan21_i2v_14b(cls) -> ModelConfig:
        """Wan2.1-I2V-14B-480P/720P: 36 input channels (noise 16 + mask 4 + image latent 16), CLIP image tokens."""
        return dataclasses.replace(cls.wan21_t2v_14b(), in_channels=36, image_dim=1280, added_kv_proj_dim=5120)

    @classmethod
    def wan21_flf2v_14b(cls) -> ModelConfig:
        """Wan2.1-FLF2V-14B-720P: first and last frame, 2 x 257 image tokens with a learned position table."""
        return dataclasses.replace(cls.wan21_i2v_14b(), pos_embed_seq_len=514)

    @classmethod
    def wan22_ti2v_5b(cls) -> ModelConfig:
        """Wan2.2-TI2V-5B: the Wan2.2 VAE's 48 channels; image-to-video by a clean first frame (per-token t)."""
        return cls(dim=3072, ffn_dim=14336, num_heads=24, num_layers=30, in_channels=48, out_channels=48)

    @classmethod
    def wan22_t2v_a14b(cls) -> ModelConfig:
        """One expert of Wan2.2-T2V-A14B (both experts have this shape)."""
        return cls.wan21_t2v_14b()

    @classmethod
    def wan22_i2v_a14b(cls) -> ModelConfig:
        """One expert of Wan2.2-I2V-A14B: 36 input channels like Wan2.1-I2V, no CLIP image branch."""
        return dataclasses.replace(cls.wan21_t2v_14b(), in_channels=36)

    @classmethod
    def tiny(cls) -> ModelConfig:
        return cls(dim=128, ffn_dim=256, num_heads=2, num_layers=2, text_dim=64, freq_dim=64)


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Wan causal 3D VAE (diffusers `AutoencoderKLWan` fields). Stride 4x8x8 for three downsamples (Wan2.1);
    Wan2.2 (`is_residual`, 2x2 patches, z_dim 48) is 4x16x16.

    kind "pixel" is the exact, parameter-free pixel codec of the toy models (wanjax.model.pixel): stride
    4 x pixel_size x pixel_size, z_dim = 4 * 3 * pixel_size**2.
    """

    kind: str = "wan"  # wan | pixel
    pixel_size: int = 4
    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temperal_downsample: tuple[bool, ...] = (False, True, True)
    is_residual: bool = False  # Wan2.2: down/up blocks with parameter-free shortcuts (model/vae_residual.py)
    patch_size: int = 1  # video pixels per latent-grid side before the encoder (Wan2.2: 2, diffusers' patchify)
    decoder_base_dim: int | None = None  # the decoder's base width; None = base_dim (Wan2.2: 256 vs 160)
    latents_mean: tuple[float, ...] = (
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
    )  # fmt: skip
    latents_std: tuple[float, ...] = (
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
    )  # fmt: skip
    dtype: str = "float32"

    @property
    def temporal_stride(self) -> int:
        return 4 if self.kind == "pixel" else 2 ** sum(self.temperal_downsample)

    @property
    def spatial_stride(self) -> int:
        return self.pixel_size if self.kind == "pixel" else self.patch_size * 2 ** (len(self.dim_mult) - 1)

    @property
    def decoder_dim(self) -> int:
        return self.decoder_base_dim or self.base_dim

    def validate(self) -> None:
        _choice("vae.kind", self.kind, ("wan", "pixel"))
        if self.kind == "pixel":
            if self.z_dim != 12 * self.pixel_size**2:
                raise WanjaxError(
                    f"vae.z_dim={self.z_dim}: the pixel codec with pixel_size={self.pixel_size} has "
                    f"z_dim = 4 * 3 * pixel_size**2 = {12 * self.pixel_size**2}"
                )
            return
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise WanjaxError(f"vae.latents_mean/latents_std need z_dim={self.z_dim} values each")
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise WanjaxError("vae.temperal_downsample needs one entry per downsample (len(dim_mult) - 1)")
        if not isinstance(self.patch_size, int) or self.patch_size < 1:
            raise WanjaxError(f"vae.patch_size={self.patch_size!r}: must be an int >= 1 (1 = Wan2.1, 2 = Wan2.2)")
        if self.decoder_base_dim is not None and self.decoder_base_dim < 1:
            raise WanjaxError(f"vae.decoder_base_dim={self.decoder_base_dim}: must be >= 1, or unset for base_dim")
        if self.is_residual:
            self._check_residual_widths()

    def _check_residual_widths(self) -> None:
        """Each residual stage's shortcut folds its F = ft·fs² resampled positions into channels and averages
        (encoder) or splits (decoder) them: encoder C_in·F must be a multiple of C_out, decoder C_out·F of C_in."""
        enc = [self.base_dim * m for m in (1, *self.dim_mult)]
        dec = [self.decoder_dim * m for m in (self.dim_mult[-1], *self.dim_mult[::-1])]
        last = len(self.temperal_downsample)
        for i in range(len(self.dim_mult)):
            down = 1 if i == last else 8 if self.temperal_downsample[i] else 4
            up = 1 if i == last else 8 if self.temperal_downsample[::-1][i] else 4
            if enc[i] * down % enc[i + 1] or (i < last and dec[i + 1] * up % dec[i]):
                raise WanjaxError(
                    f"vae.dim_mult={list(self.dim_mult)} with is_residual=True: stage {i}'s shortcut cannot regroup "
                    f"its channels (encoder {enc[i]}x{down} -> {enc[i + 1]}, decoder {dec[i]} -> {dec[i + 1]}x{up}); "
                    "use multipliers that double at most per stage, e.g. [1, 2, 4, 4]"
                )

    @classmethod
    def wan21(cls) -> VAEConfig:
        return cls()

    @classmethod
    def wan22(cls) -> VAEConfig:
        """Wan2.2-TI2V-5B's VAE (vae/config.json of Wan-AI/Wan2.2-TI2V-5B-Diffusers)."""
        mean = (
            -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
            -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
            -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
            -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
            -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
            0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
        )  # fmt: skip
        std = (
            0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
            0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
            0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
            0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
            0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
            0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
        )  # fmt: skip
        return cls(
            base_dim=160,
            decoder_base_dim=256,
            z_dim=48,
            is_residual=True,
            patch_size=2,
            latents_mean=mean,
            latents_std=std,
        )

    @classmethod
    def tiny(cls) -> VAEConfig:
        return cls(base_dim=8, dim_mult=(1, 2, 2, 2), num_res_blocks=1)

    @classmethod
    def pixel(cls) -> VAEConfig:
        return cls(kind="pixel", pixel_size=4, z_dim=192)


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

    def validate(self) -> None:
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

    def validate(self) -> None:
        _choice("data.name", self.name, ("brushsprites", "sprites60", "video_latents"))
        check_frame_count(self.frames, "data.frames")
        if self.stream and self.name == "video_latents":
            raise WanjaxError("data.stream=true generates procedural clips; video_latents is built ahead: set it false")
        if self.workers < 0:
            raise WanjaxError(f"data.workers={self.workers} must be >= 0 (0 = no worker processes)")


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
        self.check_parts()
        return self

    def check_parts(self) -> None:
        """The DiT and the VAE must fit: the DiT's output channels are the VAE's latent channels, and extra input
        channels are an image-to-video condition (a mask of temporal-stride channels + the image latent)."""
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


PRESETS = {
    "model": {
        "wan2.1-t2v-1.3b": ModelConfig.wan21_t2v_1_3b,
        "wan2.1-t2v-14b": ModelConfig.wan21_t2v_14b,
        "wan2.1-i2v-14b-480p": ModelConfig.wan21_i2v_14b,
        "wan2.1-i2v-14b-720p": ModelConfig.wan21_i2v_14b,
        "wan2.1-flf2v-14b-720p": ModelConfig.wan21_flf2v_14b,
        "wan2.2-ti2v-5b": ModelConfig.wan22_ti2v_5b,
        "wan2.2-t2v-a14b": ModelConfig.wan22_t2v_a14b,
        "wan2.2-i2v-a14b": ModelConfig.wan22_i2v_a14b,
        "tiny": ModelConfig.tiny,
    },
    "vae": {"wan2.1": VAEConfig.wan21, "wan2.2": VAEConfig.wan22, "tiny": VAEConfig.tiny, "pixel": VAEConfig.pixel},
}


def check_frame_count(frames: int, what: str = "frames", temporal_stride: int = 4) -> None:
    """Wan's causal VAE maps 4k+1 video frames to k+1 latent frames; anything else cannot be encoded."""
    if frames < 1 or (frames - 1) % temporal_stride:
        lo = (frames - 1) // temporal_stride * temporal_stride + 1
        raise WanjaxError(
            f"{what}={frames} is not {temporal_stride}k+1; use {max(lo, 1)} or {lo + temporal_stride} "
            f"(e.g. 17, 81, 961)"
        )


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise WanjaxError(f"{key}={value!r} is not one of {', '.join(allowed)}")
