"""diffusers `WanTransformer3DModel` folder <-> WanDiT: the key table, the config mapping, load/save."""

from __future__ import annotations

from pathlib import Path

from flax import nnx

from wanjax.config import ModelConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import (
    IDENTITY,
    LINEAR,
    Rule,
    Transform,
    load_reference,
    read_folder,
    reference_tensors,
    write_folder,
)
from wanjax.model.dit import WanDiT

SQUEEZE0 = Transform(lambda a: a[0], lambda a: a[None])  # scale_shift_table [1, n, D] <-> [n, D]


def _linear(ref: str, ours: str) -> list[Rule]:
    return [Rule(f"{ref}.weight", f"{ours}/kernel", LINEAR), Rule(f"{ref}.bias", f"{ours}/bias")]


def dit_table(cfg: ModelConfig) -> list[Rule]:
    """Reference key -> WanDiT parameter path. Block tensors stack over the scanned layer axis."""
    pt, ph, pw = cfg.patch_size
    c, d = cfg.in_channels, cfg.dim
    # Conv3d [D, C, pt, ph, pw] with stride = kernel is a Linear over flattened (pt, ph, pw, C) patches.
    patch = Transform(
        lambda a: a.transpose(2, 3, 4, 1, 0).reshape(-1, d),
        lambda a: a.reshape(pt, ph, pw, c, d).transpose(4, 3, 0, 1, 2),
    )
    rules = [
        Rule("patch_embedding.weight", "patch_embedding/kernel", patch),
        Rule("patch_embedding.bias", "patch_embedding/bias"),
        *_linear("condition_embedder.time_embedder.linear_1", "time_embedder/linear_1"),
        *_linear("condition_embedder.time_embedder.linear_2", "time_embedder/linear_2"),
        *_linear("condition_embedder.time_proj", "time_embedder/time_proj"),
        *_linear("condition_embedder.text_embedder.linear_1", "text_embedder/linear_1"),
        *_linear("condition_embedder.text_embedder.linear_2", "text_embedder/linear_2"),
        Rule("scale_shift_table", "scale_shift_table", SQUEEZE0),
        *_linear("proj_out", "proj_out"),
        Rule("blocks.{i}.scale_shift_table", "blocks/scale_shift_table", SQUEEZE0),
        *_linear("blocks.{i}.ffn.net.0.proj", "blocks/ffn/fc_in"),
        *_linear("blocks.{i}.ffn.net.2", "blocks/ffn/fc_out"),
    ]
    for attn in ("attn1", "attn2"):
        for proj in ("to_q", "to_k", "to_v"):
            rules += _linear(f"blocks.{{i}}.{attn}.{proj}", f"blocks/{attn}/{proj}")
        rules += _linear(f"blocks.{{i}}.{attn}.to_out.0", f"blocks/{attn}/to_out")
        rules += [Rule(f"blocks.{{i}}.{attn}.norm_{n}.weight", f"blocks/{attn}/norm_{n}/scale") for n in "qk"]
    if cfg.cross_attn_norm:
        rules += [Rule("blocks.{i}.norm2.weight", "blocks/norm2/scale", IDENTITY)]
        rules += [Rule("blocks.{i}.norm2.bias", "blocks/norm2/bias", IDENTITY)]
    if cfg.image_dim is not None:
        image = "condition_embedder.image_embedder"
        rules += [Rule(f"{image}.{n}.weight", f"image_embedder/{n}/scale") for n in ("norm1", "norm2")]
        rules += [Rule(f"{image}.{n}.bias", f"image_embedder/{n}/bias") for n in ("norm1", "norm2")]
        rules += [
            *_linear(f"{image}.ff.net.0.proj", "image_embedder/fc_in"),
            *_linear(f"{image}.ff.net.2", "image_embedder/fc_out"),
        ]
        rules += [*_linear("blocks.{i}.attn2.add_k_proj", "blocks/attn2/add_k_proj")]
        rules += [*_linear("blocks.{i}.attn2.add_v_proj", "blocks/attn2/add_v_proj")]
        rules += [Rule("blocks.{i}.attn2.norm_added_k.weight", "blocks/attn2/norm_added_k/scale")]
    if cfg.pos_embed_seq_len is not None:
        rules += [Rule("condition_embedder.image_embedder.pos_embed", "image_embedder/pos_embed", SQUEEZE0)]
    return rules


def model_config_from_diffusers(c: dict, **overrides) -> ModelConfig:
    """ModelConfig from a diffusers `WanTransformer3DModel` config.json (Wan2.1 T2V / I2V / FLF2V, Wan2.2)."""
    if c.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads":
        raise WanjaxError(f"config.json qk_norm={c['qk_norm']!r}: only 'rms_norm_across_heads' (Wan) is supported")
    heads, head_dim = c.get("num_attention_heads", 40), c.get("attention_head_dim", 128)
    return ModelConfig(
        dim=heads * head_dim,
        ffn_dim=c.get("ffn_dim", 13824),
        num_heads=heads,
        num_layers=c.get("num_layers", 40),
        in_channels=c.get("in_channels", 16),
        out_channels=c.get("out_channels") or c.get("in_channels", 16),
        patch_size=tuple(c.get("patch_size", (1, 2, 2))),
        text_dim=c.get("text_dim", 4096),
        freq_dim=c.get("freq_dim", 256),
        eps=c.get("eps", 1e-6),
        cross_attn_norm=c.get("cross_attn_norm", True),
        rope_max_seq_len=c.get("rope_max_seq_len", 1024),
        image_dim=c.get("image_dim"),
        added_kv_proj_dim=c.get("added_kv_proj_dim"),
        pos_embed_seq_len=c.get("pos_embed_seq_len"),
        **overrides,
    )


def model_config_to_diffusers(cfg: ModelConfig) -> dict:
    return {
        "_class_name": "WanTransformer3DModel",
        "patch_size": list(cfg.patch_size),
        "num_attention_heads": cfg.num_heads,
        "attention_head_dim": cfg.head_dim,
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_channels,
        "text_dim": cfg.text_dim,
        "freq_dim": cfg.freq_dim,
        "ffn_dim": cfg.ffn_dim,
        "num_layers": cfg.num_layers,
        "cross_attn_norm": cfg.cross_attn_norm,
        "qk_norm": "rms_norm_across_heads",
        "eps": cfg.eps,
        "image_dim": cfg.image_dim,
        "added_kv_proj_dim": cfg.added_kv_proj_dim,
        "rope_max_seq_len": cfg.rope_max_seq_len,
        "pos_embed_seq_len": cfg.pos_embed_seq_len,
    }


def load_dit(folder: str | Path, **overrides) -> WanDiT:
    """A diffusers-layout Wan transformer folder -> WanDiT (config read from the folder; `overrides` e.g. dtype)."""
    config, tensors = read_folder(folder)
    cfg = model_config_from_diffusers(config, **overrides)
    return load_reference(
        lambda: WanDiT(cfg, rngs=nnx.Rngs(0)), tensors, dit_table(cfg), f"transformer folder {folder}"
    )


def save_dit(dit: WanDiT, folder: str | Path, shard_bytes: int = 5 << 30) -> None:
    """WanDiT -> diffusers-layout folder (config.json + safetensors, sharded past `shard_bytes`)."""
    write_folder(folder, model_config_to_diffusers(dit.cfg), reference_tensors(dit, dit_table(dit.cfg)), shard_bytes)
