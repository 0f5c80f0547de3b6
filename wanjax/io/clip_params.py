"""Hugging Face `CLIPVisionModel` folder <-> CLIPVision: the key table, the config mapping, load/save.

Wan2.1-I2V-*-Diffusers repos ship `image_encoder/` (config.json + model.safetensors, or shards named in
model.safetensors.index.json). Keys start with `vision_model.` as transformers 4 saved them (Wan's files); 5 saves
them without it and reads both, as we do; we write the prefix, which both read. numpy only, no torch. Every tensor
is loaded, the last layer and `post_layernorm` included (CLIPVision holds them but does not run them), so a saved
folder is a complete `CLIPVisionModel`.
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes  # noqa: F401  registers bfloat16 with numpy, so safetensors.numpy can read BF16 tensors
from flax import nnx

from wanjax.errors import WanjaxError
from wanjax.io.convert import CONV2D, LINEAR, Rule, load_reference, read_folder, reference_tensors, write_folder
from wanjax.model.clip import CLIPVision, CLIPVisionConfig

WEIGHTS = "model.safetensors"
PREFIX = "vision_model."
_LAYER = "encoder.layers.{i}"


def _norm(ref: str, ours: str) -> list[Rule]:
    return [Rule(f"{ref}.weight", f"{ours}/scale"), Rule(f"{ref}.bias", f"{ours}/bias")]


def _linear(ref: str, ours: str) -> list[Rule]:
    return [Rule(f"{ref}.weight", f"{ours}/kernel", LINEAR), Rule(f"{ref}.bias", f"{ours}/bias")]


# Reference key (less PREFIX) -> CLIPVision parameter path; `{i}` stacks over the vmapped layer axis.
CLIP_TABLE = [
    Rule("embeddings.class_embedding", "class_embedding"),
    Rule("embeddings.patch_embedding.weight", "patch_embedding/kernel", CONV2D),
    Rule("embeddings.position_embedding.weight", "position_embedding"),
    *_norm("pre_layrnorm", "pre_layrnorm"),
    *_norm(f"{_LAYER}.layer_norm1", "layers/layer_norm1"),
    *(r for p in ("q_proj", "k_proj", "v_proj", "out_proj") for r in _linear(f"{_LAYER}.self_attn.{p}", f"layers/{p}")),
    *_norm(f"{_LAYER}.layer_norm2", "layers/layer_norm2"),
    *_linear(f"{_LAYER}.mlp.fc1", "layers/fc1"),
    *_linear(f"{_LAYER}.mlp.fc2", "layers/fc2"),
    *_norm("post_layernorm", "post_layernorm"),
]
_FIELDS = [f.name for f in CLIPVisionConfig.__dataclass_fields__.values()]


def config_from_hf(c: dict) -> CLIPVisionConfig:
    """CLIPVisionConfig from a `CLIPVisionModel` config.json (dict); absent fields take transformers' defaults."""
    if c.get("model_type", "clip_vision_model") != "clip_vision_model":
        raise WanjaxError(
            f"config.json model_type={c['model_type']!r}: only 'clip_vision_model' (a CLIPVisionModel folder such as "
            f"Wan's image_encoder/) is supported"
        )
    if c.get("num_channels", 3) != 3:
        raise WanjaxError(f"config.json num_channels={c['num_channels']}: only 3 (RGB) is supported")
    cfg = CLIPVisionConfig(**{k: c[k] for k in _FIELDS if k in c})
    cfg.validate()
    return cfg


def config_to_hf(cfg: CLIPVisionConfig) -> dict:
    """The config.json of a transformers `CLIPVisionModel` with this architecture."""
    arch = {k: getattr(cfg, k) for k in _FIELDS}
    return {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model", "num_channels": 3, **arch}


def load_clip(folder: str | Path) -> CLIPVision:
    """A Hugging Face `CLIPVisionModel` folder (Wan's image_encoder/) -> CLIPVision (fp32 parameters)."""
    config, tensors = read_folder(folder, WEIGHTS)
    cfg = config_from_hf(config)
    tensors = {k.removeprefix(PREFIX): v for k, v in tensors.items()}
    tensors.pop("embeddings.position_ids", None)  # a buffer (arange) that older transformers saved
    return load_reference(lambda: CLIPVision(cfg, rngs=nnx.Rngs(0)), tensors, CLIP_TABLE, f"image encoder {folder}")


def save_clip(encoder: CLIPVision, folder: str | Path, shard_bytes: int = 5 << 30) -> None:
    """CLIPVision -> Hugging Face folder (config.json + model.safetensors, sharded past `shard_bytes`)."""
    tensors = {PREFIX + k: v for k, v in reference_tensors(encoder, CLIP_TABLE).items()}
    write_folder(folder, config_to_hf(encoder.cfg), tensors, shard_bytes, weights=WEIGHTS)
