"""diffusers `AutoencoderKLWan` folder <-> WanVAE: the key table, the config mapping, load/save.

Our module tree mirrors diffusers' (model/vae_blocks.py, model/vae_residual.py), so a reference key maps to our
path by swapping '.' for '/', 'weight' for 'kernel' and dropping `resample.1`'s Sequential index. One table
serves Wan2.1 and Wan2.2 (residual) VAEs: the rules of modules a VAE lacks simply match nothing.
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
    """Reference key -> WanVAE parameter path (rules for absent modules simply match nothing)."""
    rules = [*_conv("quant_conv"), *_conv("post_quant_conv")]
    for part in ("encoder", "decoder"):
        rules += [*_conv(f"{part}.conv_in"), *_norm(f"{part}.norm_out"), *_conv(f"{part}.conv_out")]
        rules += [*_resblock(f"{part}.mid_block.resnets.{{i}}"), *_attention(f"{part}.mid_block.attentions.{{i}}")]
    rules += [*_resblock("encoder.down_blocks.{i}"), *_resample("encoder.down_blocks.{i}")]  # Wan2.1: flat
    rules += [*_resblock("decoder.up_blocks.{i}.resnets.{j}"), *_resample("decoder.up_blocks.{i}.upsamplers.{j}")]
    # Wan2.2's residual blocks (their shortcuts have no parameters).
    rules += [*_resblock("encoder.down_blocks.{i}.resnets.{j}"), *_resample("encoder.down_blocks.{i}.downsampler")]
    rules += [*_resample("decoder.up_blocks.{i}.upsampler")]
    return rules


def vae_config_from_diffusers(c: dict, **overrides) -> VAEConfig:
    """VAEConfig from a diffusers `AutoencoderKLWan` config.json (Wan2.1 or Wan2.2; `overrides` e.g. dtype)."""
    d = VAEConfig()
    patch = c.get("patch_size") or 1  # diffusers: None = no patchify
    cfg = VAEConfig(
        base_dim=c.get("base_dim", d.base_dim),
        decoder_base_dim=c.get("decoder_base_dim"),
        z_dim=c.get("z_dim", d.z_dim),
        dim_mult=tuple(c.get("dim_mult", d.dim_mult)),
        num_res_blocks=c.get("num_res_blocks", d.num_res_blocks),
        attn_scales=tuple(float(s) for s in c.get("attn_scales", d.attn_scales)),
        temperal_downsample=tuple(bool(t) for t in c.get("temperal_downsample", d.temperal_downsample)),
        is_residual=bool(c.get("is_residual", False)),
        patch_size=patch,
        latents_mean=tuple(float(m) for m in c.get("latents_mean", d.latents_mean)),
        latents_std=tuple(float(s) for s in c.get("latents_std", d.latents_std)),
        **overrides,
    )
    cfg.validate()
    derived = {
        "in_channels": (3 * patch**2, "RGB video, 3 x patch_size**2 channels after patchify"),
        "out_channels": (3 * patch**2, "RGB video, 3 x patch_size**2 channels before unpatchify"),
        "scale_factor_spatial": (cfg.spatial_stride, "patch_size x 2**(len(dim_mult) - 1)"),
        "scale_factor_temporal": (cfg.temporal_stride, "2**sum(temperal_downsample)"),
    }
    for key, (expected, why) in derived.items():
        value = c.get(key)
        if value is not None and value != expected:
            raise WanjaxError(f"config.json sets {key}={value!r}: expected {expected} ({why})")
    return cfg


def vae_config_to_diffusers(cfg: VAEConfig) -> dict:
    channels = 3 * cfg.patch_size**2
    return {
        "_class_name": "AutoencoderKLWan",
        "base_dim": cfg.base_dim,
        "decoder_base_dim": cfg.decoder_base_dim,
        "z_dim": cfg.z_dim,
        "dim_mult": list(cfg.dim_mult),
        "num_res_blocks": cfg.num_res_blocks,
        "attn_scales": list(cfg.attn_scales),
        "temperal_downsample": list(cfg.temperal_downsample),
        "dropout": 0.0,
        "latents_mean": list(cfg.latents_mean),
        "latents_std": list(cfg.latents_std),
        "is_residual": cfg.is_residual,
        "in_channels": channels,
        "out_channels": channels,
        "patch_size": cfg.patch_size if cfg.patch_size > 1 else None,
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
