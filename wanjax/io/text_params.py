"""Hugging Face UMT5 encoder folder <-> UMT5Encoder (key table, load/save), and the tokenizer folder.

Wan-*-Diffusers repos ship `text_encoder/` (config.json + model.safetensors, or shards named in
model.safetensors.index.json; usually bfloat16) and `tokenizer/` (tokenizer.json, spiece.model, ...). numpy only,
no torch: bfloat16 tensors are read as ml_dtypes.bfloat16, the numpy dtype jax registers.
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes  # noqa: F401  registers bfloat16 with numpy, so safetensors.numpy can read BF16 tensors
from flax import nnx

from wanjax.errors import WanjaxError
from wanjax.io.convert import LINEAR, Rule, load_reference, read_folder, reference_tensors, write_folder
from wanjax.model.text import Tokenizer, UMT5Config, UMT5Encoder

WEIGHTS = "model.safetensors"
_ATTN, _FFN = "encoder.block.{i}.layer.0", "encoder.block.{i}.layer.1"

# Reference key -> UMT5Encoder parameter path; `{i}` stacks over the scanned layer axis. The embedding is tied:
# `shared.weight` and `encoder.embed_tokens.weight` are the same tensor, a folder holds either or both.
TEXT_TABLE = [
    Rule("shared.weight", "embed"),
    Rule("encoder.embed_tokens.weight", "embed"),
    *(Rule(f"{_ATTN}.SelfAttention.{p}.weight", f"blocks/{p}/kernel", LINEAR) for p in "qkvo"),
    Rule(f"{_ATTN}.SelfAttention.relative_attention_bias.weight", "blocks/relative_attention_bias"),
    Rule(f"{_ATTN}.layer_norm.weight", "blocks/attn_norm"),
    *(Rule(f"{_FFN}.DenseReluDense.{p}.weight", f"blocks/{p}/kernel", LINEAR) for p in ("wi_0", "wi_1", "wo")),
    Rule(f"{_FFN}.layer_norm.weight", "blocks/ffn_norm"),
    Rule("encoder.final_layer_norm.weight", "final_norm"),
]


def load_text_encoder(folder: str | Path, **overrides) -> UMT5Encoder:
    """A Hugging Face UMT5 encoder folder -> UMT5Encoder (config read from it; `overrides` e.g. dtype="bfloat16")."""
    config, tensors = read_folder(folder, WEIGHTS)
    cfg = UMT5Config.from_hf(config, **overrides)
    if "shared.weight" in tensors:  # tied: HF reads `shared` when both are present
        tensors.pop("encoder.embed_tokens.weight", None)
    return load_reference(lambda: UMT5Encoder(cfg, rngs=nnx.Rngs(0)), tensors, TEXT_TABLE, f"text encoder {folder}")


def save_text_encoder(encoder: UMT5Encoder, folder: str | Path) -> None:
    """UMT5Encoder -> Hugging Face folder (config.json + model.safetensors) that `UMT5EncoderModel` loads."""
    write_folder(folder, encoder.cfg.to_hf(), reference_tensors(encoder, TEXT_TABLE), weights=WEIGHTS)


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """A tokenizer folder holding tokenizer.json (or the file itself) -> Tokenizer."""
    from tokenizers import Tokenizer as RustTokenizer

    path = Path(folder)
    path = path / "tokenizer.json" if path.is_dir() else path
    if not path.is_file():
        raise WanjaxError(
            f"no tokenizer.json at {path}: Wan repos ship tokenizer/tokenizer.json (beside spiece.model, which "
            f"is not read here); point at that folder or file"
        )
    try:
        rust = RustTokenizer.from_file(str(path))
    except Exception as e:  # the tokenizers library raises a bare Exception for unparsable files
        raise WanjaxError(f"{path} is not a readable tokenizer.json ({e})") from e
    return Tokenizer(rust)
