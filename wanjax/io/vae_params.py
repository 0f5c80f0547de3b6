"""diffusers `AutoencoderKLWan` folder <-> WanVAE: the key table, the config mapping, load/save.

Our module tree mirrors diffusers' (model/vae_blocks.py), so a reference key maps to our path by swapping
'.' for '/', 'weight' for 'kernel' and dropping `resample.1`'s Sequential index.
"""

from __future__ import annotations

from pathlib import Path

from flax import nnx

from wanjax.config import VAEConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import (
    CONV2D,
    CONV3D,
    Rule,
    Transform,
    load_reference,
    read_folder,
    reference_tensors,
    write_folder,
)
from wanjax.model.vae import WanVAE

# WanRMS_norm keeps gamma broadcastable over [C, T, H, W] (videos) or [C, H, W] (attention, per frame).
GAMMA_VIDEO = Transform(lambda a: a.reshape(-1), lambda a: a.reshape(-1, 1, 1, 1))
GAMMA_IMAGE = Transform(lambda a: a.reshape(-1), lambda a: a.reshape(-1, 1, 1))


def _ours(ref: str) -> str:
    return ref.replace(".", "/")


def _conv(ref: str, transform: Transform = CONV3D, ours: str | None = None) -> list[Rule]:
    ours = ours or _ours(ref)
    return [Rule(f"{ref}.weight", f"{ours}/kernel", transform), Rule(f"{ref}.bias", f"{ours}/bias")]


def _norm(ref: str, transform: Transform = GAMMA_VIDEO) -> list[Rule]:
    return [Rule(f"{ref}.gamma", f"{_ours(ref)}/gamma", transform)]


def _resblock(ref: str) -> list[Rule]:
    return [
        *_norm(f"{ref}.norm1"),
        *_conv(f"{ref}.conv1"),
        *_norm(f"{ref}.norm2"),
        *_conv(f"{ref}.conv2"),
        *_conv(f"{ref}.conv_shortcut"),
    ]


def _resample(ref: str) -> list[Rule]:
    return [*_conv(f"{ref}.resample.1", CONV2D, ours=f"{_ours(ref)}/resample"), *_conv(f"{ref}.time_conv")]


def _attention(ref: str) -> list[Rule]:
    return [*_norm(f"{ref}.norm", GAMMA_IMAGE), *_conv(f"{ref}.to_qkv", CONV2D), *_conv(f"{ref}.proj", CONV2D)]


def vae_table() -> list[Rule]:
    """Reference key -> WanVAE parameter path (Wan2.1 layout; rules for absent modules simply match nothing)."""
    rules = [*_conv("quant_conv"), *_conv("post_quant_conv")]
    for part in ("encoder", "decoder"):
        rules += [*_conv(f"{part}.conv_in"), *_norm(f"{part}.norm_out"), *_conv(f"{part}.conv_out")]
        rules += [*_resblock(f"{part}.mid_block.resnets.{{i}}"), *_attention(f"{part}.mid_block.attentions.{{i}}")]
    rules += [*_resblock("encoder.down_blocks.{i}"), *_resample("encoder.down_blocks.{i}")]
    rules += [*_resblock("decoder.up_blocks.{i}.resnets.{j}"), *_resample("decoder.up_blocks.{i}.upsamplers.{j}")]
    return rules


def vae_config_from_diffusers(c: dict, **overrides) -> VAEConfig:
    """VAEConfig from a diffusers `AutoencoderKLWan` config.json (Wan2.1 layout; `overrides` e.g. dtype)."""
    d = VAEConfig()
    base_dim = c.get("base_dim", d.base_dim)
    unsupported = {
        "is_residual": (c.get("is_residual", False), False, "Wan2.2 residual VAEs are not supported"),
        "patch_size": (c.get("patch_size"), None, "patchified (Wan2.2) VAEs are not supported"),
        "decoder_base_dim": (
            c.get("decoder_base_dim") or base_dim,
            base_dim,
            "a separate decoder width is unsupported",
        ),
        "in_channels": (c.get("in_channels", 3), 3, "RGB video only"),
        "out_channels": (c.get("out_channels", 3), 3, "RGB video only"),
    }
    for key, (value, supported, why) in unsupported.items():
        if value != supported:
            raise WanjaxError(f"config.json sets {key}={value!r}: {why} (expected {supported!r})")
    return VAEConfig(
        base_dim=base_dim,
        z_dim=c.get("z_dim", d.z_dim),
        dim_mult=tuple(c.get("dim_mult", d.dim_mult)),
        num_res_blocks=c.get("num_res_blocks", d.num_res_blocks),
        attn_scales=tuple(float(s) for s in c.get("attn_scales", d.attn_scales)),
        temperal_downsample=tuple(bool(t) for t in c.get("temperal_downsample", d.temperal_downsample)),
        latents_mean=tuple(float(m) for m in c.get("latents_mean", d.latents_mean)),
        latents_std=tuple(float(s) for s in c.get("latents_std", d.latents_std)),
        **overrides,
    )


def vae_config_to_diffusers(cfg: VAEConfig) -> dict:
    return {
        "_class_name": "AutoencoderKLWan",
        "base_dim": cfg.base_dim,
        "decoder_base_dim": None,
        "z_dim": cfg.z_dim,
        "dim_mult": list(cfg.dim_mult),
        "num_res_blocks": cfg.num_res_blocks,
        "attn_scales": list(cfg.attn_scales),
        "temperal_downsample": list(cfg.temperal_downsample),
        "dropout": 0.0,
        "latents_mean": list(cfg.latents_mean),
        "latents_std": list(cfg.latents_std),
        "is_residual": False,
        "in_channels": 3,
        "out_channels": 3,
        "patch_size": None,
        "scale_factor_temporal": cfg.temporal_stride,
        "scale_factor_spatial": cfg.spatial_stride,
    }


def load_vae(folder: str | Path, **overrides) -> WanVAE:
    """A diffusers-layout `AutoencoderKLWan` folder -> WanVAE (config read from the folder; `overrides` e.g. dtype)."""
    config, tensors = read_folder(folder)
    cfg = vae_config_from_diffusers(config, **overrides)
    return load_reference(lambda: WanVAE(cfg, rngs=nnx.Rngs(0)), tensors, vae_table(), f"VAE folder {folder}")


def save_vae(vae: WanVAE, folder: str | Path) -> None:
    """WanVAE -> diffusers-layout folder (config.json + diffusion_pytorch_model.safetensors)."""
    write_folder(folder, vae_config_to_diffusers(vae.cfg), reference_tensors(vae, vae_table()))
