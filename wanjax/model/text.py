"""The UMT5 text encoder of Wan (Hugging Face `UMT5EncoderModel`) and its tokenizer, in flax.nnx.

    tokenizer, encoder = load_tokenizer(repo / "tokenizer"), load_text_encoder(repo / "text_encoder")  # io/text_params
    context = encode_prompts(encoder, tokenizer, ["a cat on a mat"])   # [B, 512, d_model], zero past each prompt

T5 (Raffel et al. 2020, §2.1) as UMT5 (Chung et al. 2023) has it: pre-norm residual blocks whose RMS norm has
no mean and no bias; attention logits without the 1/sqrt(K) scale (folded into q's initialisation); no position
embeddings but a learned bias per relative-position bucket added to the logits, one table per layer in UMT5
(T5 shares layer 0's); a gated-GELU FFN. Blocks are created once with `nnx.vmap` and applied with `lax.scan`.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.errors import WanjaxError
from wanjax.model.layers import rms_norm

DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class UMT5Config:
    """UMT5 encoder architecture (Hugging Face `UMT5Config` fields). Defaults: UMT5-XXL, Wan's text encoder."""

    vocab_size: int = 256384
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"

    def validate(self) -> None:
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise WanjaxError(f"text encoder {name}={getattr(self, name)!r}: use one of {', '.join(DTYPES)}")
        if self.relative_attention_num_buckets < 4:
            raise WanjaxError(f"relative_attention_num_buckets={self.relative_attention_num_buckets}: need >= 4")

    @classmethod
    def from_hf(cls, c: dict, **overrides) -> UMT5Config:
        """From a Hugging Face UMT5 `config.json` (dict); `overrides` e.g. dtype="bfloat16"."""
        if c.get("model_type", "umt5") != "umt5":
            raise WanjaxError(
                f"config.json model_type={c['model_type']!r}: only 'umt5' is supported (T5 and mT5 share one "
                f"relative position bias across layers, UMT5 has one per layer)"
            )
        proj = c.get("feed_forward_proj", "gated-gelu")
        if proj != "gated-gelu":
            raise WanjaxError(
                f"config.json feed_forward_proj={proj!r}: only 'gated-gelu' (UMT5, T5 v1.1, Wan's text encoder) is "
                f"supported"
            )
        return cls(**{k: c[k] for k in _hf_fields() if k in c}, **overrides)

    def to_hf(self) -> dict:
        """The `config.json` of a Hugging Face `UMT5EncoderModel` with this architecture."""
        arch = {k: getattr(self, k) for k in _hf_fields()}
        return {"architectures": ["UMT5EncoderModel"], "model_type": "umt5", "feed_forward_proj": "gated-gelu", **arch}


def _hf_fields() -> list[str]:
    """UMT5Config fields that config.json holds (all but the dtypes)."""
    return [f.name for f in dataclasses.fields(UMT5Config) if f.name not in ("dtype", "param_dtype")]


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """Bucket [M, M] of each relative position (key - query), bidirectional T5 (HF `_relative_position_bucket`).

    Half the buckets are for keys after the query; within a half, distances below half of it get one bucket
    each, larger ones logarithmic buckets up to `max_distance`, beyond which all share the last. Computed in
    float32 step by step as the reference does, so bucket boundaries (exact powers, e.g. 16 and 32) agree.
    """
    rel = np.arange(length)[None, :] - np.arange(length)[:, None]
    half = num_buckets // 2
    exact = half // 2
    dist = np.abs(rel)
    ratio = np.maximum(dist, exact).astype(np.float32) / np.float32(exact)  # >= 1 (small distances unused)
    log = np.log(ratio) / np.float32(math.log(max_distance / exact)) * np.float32(half - exact)
    large = np.minimum(exact + log.astype(np.int64), half - 1)
    return (rel > 0) * half + np.where(dist < exact, dist, large)


def t5_attention(q: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax(q k^T + bias) v in fp32, keys where mask = 0 left out (HF: dtype min added to their logits).

    q, k, v [B, M, N, K], bias [N, M, M], mask [B, M] -> [B, M, N, K]. No 1/sqrt(K) scale (T5).
    """
    logits = jnp.einsum("bmnk,bjnk->bnmj", q, k, preferred_element_type=jnp.float32) + bias.astype(jnp.float32)
    logits = jnp.where(mask[:, None, None, :] > 0, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bnmj,bjnk->bmnk", probs, v)


def _linear(d_in: int, d_out: int, axes: tuple[str, str], rngs: nnx.Rngs, dtype: str, param_dtype: str) -> nnx.Linear:
    """A bias-free Linear, kernel [d_in, d_out] annotated with logical axes (T5 has no biases)."""
    init = nnx.with_metadata(nnx.initializers.normal(d_in**-0.5), logical_axes=axes)
    return nnx.Linear(d_in, d_out, use_bias=False, kernel_init=init, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def _norm_scale(cfg: UMT5Config) -> nnx.Param:
    return nnx.Param(jnp.ones((cfg.d_model,), cfg.param_dtype), logical_axes=("embed",))


class Block(nnx.Module):
    """Pre-norm self-attention with this layer's relative position bias, then pre-norm gated-GELU FFN."""

    def __init__(self, cfg: UMT5Config, rngs: nnx.Rngs):
        self.cfg = cfg
        d, inner = cfg.d_model, cfg.num_heads * cfg.d_kv
        self.attn_norm = _norm_scale(cfg)
        dt = (cfg.dtype, cfg.param_dtype)
        self.q = _linear(d, inner, ("embed", "heads"), rngs, *dt)
        self.k = _linear(d, inner, ("embed", "heads"), rngs, *dt)
        self.v = _linear(d, inner, ("embed", "heads"), rngs, *dt)
        self.o = _linear(inner, d, ("heads", "embed"), rngs, *dt)
        table = jax.random.normal(rngs.params(), (cfg.relative_attention_num_buckets, cfg.num_heads)) * d**-0.5
        self.relative_attention_bias = nnx.Param(table.astype(cfg.param_dtype), logical_axes=(None, "heads"))
        self.ffn_norm = _norm_scale(cfg)
        self.wi_0 = _linear(d, cfg.d_ff, ("embed", "mlp"), rngs, *dt)
        self.wi_1 = _linear(d, cfg.d_ff, ("embed", "mlp"), rngs, *dt)
        # fp32 whatever the dtype, as HF keeps it (`_keep_in_fp32_modules = ["wo"]`): UMT5-XXL's FFN output
        # overflows in fp16. Its fp32 output makes HF's residual stream fp32, as ours is throughout.
        self.wo = _linear(cfg.d_ff, d, ("mlp", "embed"), rngs, "float32", "float32")

    def __call__(self, h: jax.Array, mask: jax.Array, buckets: np.ndarray) -> jax.Array:
        """h [B, M, D] fp32 residual stream, mask [B, M], buckets [M, M] -> [B, M, D] fp32."""
        cfg = self.cfg
        B, M, _ = h.shape
        dtype = jnp.dtype(cfg.dtype)
        heads = lambda a: a.reshape(B, M, cfg.num_heads, cfg.d_kv)  # noqa: E731
        x = rms_norm(h, self.attn_norm[...], cfg.layer_norm_epsilon).astype(dtype)
        bias = self.relative_attention_bias[...][buckets].transpose(2, 0, 1)  # [N, M, M]
        out = t5_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), bias, mask)
        h = h + self.o(out.reshape(B, M, -1)).astype(jnp.float32)
        x = rms_norm(h, self.ffn_norm[...], cfg.layer_norm_epsilon).astype(dtype)
        return h + self.wo(jax.nn.gelu(self.wi_0(x), approximate=True) * self.wi_1(x))  # HF gelu_new = tanh GELU


class UMT5Encoder(nnx.Module):
    """Token ids [B, M] (+ attention mask [B, M], 1 = token, 0 = padding) -> hidden states [B, M, d_model].

    Padded positions are computed like any other (HF does the same); padded keys are masked out.
    """

    def __init__(self, cfg: UMT5Config, *, rngs: nnx.Rngs):
        cfg.validate()
        self.cfg = cfg
        embed = jax.random.normal(rngs.params(), (cfg.vocab_size, cfg.d_model), cfg.param_dtype)
        self.embed = nnx.Param(embed, logical_axes=(None, "embed"))

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_blocks(rngs: nnx.Rngs) -> Block:
            return Block(cfg, rngs)

        self.blocks = make_blocks(rngs)
        self.final_norm = _norm_scale(cfg)

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
        cfg = self.cfg
        input_ids = jnp.asarray(input_ids)
        if input_ids.ndim != 2 or not jnp.issubdtype(input_ids.dtype, jnp.integer):
            raise WanjaxError(
                f"input_ids have shape {input_ids.shape} and dtype {input_ids.dtype}; expected integer token ids "
                f"[B, M] (a Tokenizer's first output)"
            )
        mask = jnp.ones_like(input_ids) if attention_mask is None else jnp.asarray(attention_mask)
        if mask.shape != input_ids.shape:
            raise WanjaxError(
                f"attention_mask has shape {mask.shape} but input_ids {input_ids.shape}; they must match ([B, M])"
            )
        M = input_ids.shape[1]
        buckets = relative_position_buckets(M, cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance)
        h = jnp.take(self.embed[...], input_ids, axis=0).astype(jnp.float32)
        graphdef, params = nnx.split(self.blocks)

        def body(h, p):
            return nnx.merge(graphdef, p)(h, mask, buckets), None

        h, _ = jax.lax.scan(body, h, params)
        return rms_norm(h, self.final_norm[...], cfg.layer_norm_epsilon).astype(cfg.dtype)


class Tokenizer:
    """A T5/UMT5 `tokenizer.json` run by the `tokenizers` library (what transformers' T5 tokenizer wraps).

    prompts -> (input_ids, attention_mask), int32 [B, max_length]: `</s>` appended (the file's post-processor),
    truncated to max_length keeping `</s>`, right-padded with the pad id, as HF's tokenizer with
    padding="max_length", truncation=True, add_special_tokens=True.
    """

    def __init__(self, tokenizer, pad_token: str = "<pad>"):
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise WanjaxError(f"the tokenizer has no pad token {pad_token!r}; a T5/UMT5 tokenizer.json has '<pad>' = 0")
        self.tokenizer, self.pad_token, self.pad_id = tokenizer, pad_token, pad_id

    def __call__(self, prompts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(prompts, str):
            prompts = [prompts]
        self.tokenizer.enable_truncation(max_length)  # leaves room for the `</s>` the post-processor adds
        self.tokenizer.enable_padding(length=max_length, pad_id=self.pad_id, pad_token=self.pad_token)
        encodings = self.tokenizer.encode_batch(list(prompts), add_special_tokens=True)
        ids = np.array([e.ids for e in encodings], np.int32).reshape(len(encodings), max_length)
        mask = np.array([e.attention_mask for e in encodings], np.int32).reshape(len(encodings), max_length)
        return ids, mask


def clean_prompt(text: str) -> str:
    """diffusers' Wan `prompt_clean`: HTML entities unescaped twice, stripped, whitespace runs -> one space.

    diffusers first applies `ftfy.fix_text` (mojibake repair) when ftfy is installed; we do not depend on ftfy,
    which equals diffusers without it (and any prompt ftfy would leave unchanged).
    """
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text)).strip()).strip()


@nnx.jit
def _encode(encoder: UMT5Encoder, ids: jax.Array, mask: jax.Array) -> jax.Array:
    return encoder(ids, mask)  # one compiled program, not op by op (UMT5-XXL: 24 layers of 4096 x 10240)


def encode_prompts(
    encoder: UMT5Encoder, tokenizer: Tokenizer, prompts: str | Sequence[str], max_length: int = 512
) -> jax.Array:
    """Text context [B, max_length, d_model] for the DiT, as diffusers' `WanPipeline._get_t5_prompt_embeds`:
    prompts cleaned, tokenized, encoded; every position at or after a prompt's token count (its `</s>` counts and
    is kept) zeroed, so padding carries nothing.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    ids, mask = tokenizer([clean_prompt(p) for p in prompts], max_length)
    emb = _encode(encoder, jnp.asarray(ids), jnp.asarray(mask))
    keep = np.arange(max_length)[None, :] < mask.sum(axis=1)[:, None]
    return jnp.where(keep[..., None], emb, jnp.zeros((), emb.dtype))
