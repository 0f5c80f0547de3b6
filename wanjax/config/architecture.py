"""The model architecture's config sections: the Wan DiT (`ModelConfig`) and the VAE (`VAEConfig`), frozen
dataclasses with defaults, validation and named presets (`PRESETS`: real Wan shapes and the toy ones)."""

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
    # Blocks applied by lax.scan (one compiled body, whatever the depth) or, false, by a Python loop: each block
    # compiled on its own, with no stacked [layers, ...] residuals to fill and copy (the faster step for a model of
    # one or two blocks on CPU; same numbers).
    scan_layers: bool = True
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
    # Sub-frame ramp (toy-model trick, prediction=sample, the pixel codec's latents only): sub-frame j of latent
    # frame f >= 1 is x0's plus (1 - (j+1)/k) x (the frame before's last sub-frame - this one's last), the frame
    # before taken clean where its sigma is 0. A head that draws a latent frame's k video frames alike then draws a
    # linear blend from the frame before instead of a jump every k frames (wanjax.model.pixel.subframe_ramp).
    subframe_ramp: bool = False
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
        if self.residual != "none" and self.in_channels != self.out_channels:
            raise WanjaxError(
                f"model.residual={self.residual} adds to the latents' own frame 0; a model with condition channels "
                f"(in_channels={self.in_channels} vs out_channels={self.out_channels}) has none to add: set it none"
            )
        if self.subframe_ramp and (
            self.prediction != "sample" or self.guide_pixel_size is None or self.patch_size[0] != 1
        ):
            raise WanjaxError(
                "model.subframe_ramp needs model.prediction=sample, the pixel codec's latents (in_channels = "
                f"out_channels = motion_subframes x 3 x s²; here {self.in_channels}, {self.out_channels}) and one "
                f"latent frame per patch (model.patch_size {list(self.patch_size)}): set it false"
            )
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
