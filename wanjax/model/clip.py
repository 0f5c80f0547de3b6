"""The CLIP vision tower of Wan2.1-I2V (Hugging Face `CLIPVisionModel`, ViT-H/14), in flax.nnx, channels-last.

    encoder = load_clip(repo / "image_encoder")                              # io/clip_params
    pixels = preprocess(images, repo / "image_processor")                    # io/clip_image: [B, 224, 224, 3]
    image_tokens = encoder(jnp.asarray(pixels))                              # [B, 257, 1280]

The tokens are what diffusers' `WanImageToVideoPipeline.encode_image` takes: `hidden_states[-2]`, the output of
the second-to-last encoder layer (hidden_states[0] being the embeddings after `pre_layrnorm`). ViT (Dosovitskiy et
al. 2021) as CLIP (Radford et al. 2021) has it: a class token and non-overlapping patches plus a learned position
table, a LayerNorm before the encoder, pre-norm residual blocks. The last layer and `post_layernorm` are held (a
saved folder is a complete `CLIPVisionModel`) but never run. Layers are created once with `nnx.vmap`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.errors import WanjaxError

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # transformers' "gelu" is the exact erf form
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
}


@dataclasses.dataclass(frozen=True)
class CLIPVisionConfig:
    """CLIP vision architecture; fields and defaults as transformers' `CLIPVisionConfig` (ViT-B/32)."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    patch_size: int = 32
    image_size: int = 224
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"

    @classmethod
    def vit_h_14(cls) -> CLIPVisionConfig:
        """Wan2.1-I2V's image encoder (open_clip ViT-H/14 at 224 px): 257 tokens of 1280."""
        return cls(1280, 5120, 32, 16, 14, 224, 1e-5, "gelu")

    def validate(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise WanjaxError(f"hidden_act={self.hidden_act!r}: use one of {', '.join(ACTIVATIONS)}")
        if self.hidden_size % self.num_attention_heads:
            raise WanjaxError(
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}"
            )
        if self.image_size % self.patch_size:
            raise WanjaxError(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}")

    @property
    def num_tokens(self) -> int:
        return 1 + (self.image_size // self.patch_size) ** 2


def attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Softmax(q k^T / sqrt(K)) v, logits and softmax in fp32. q, k, v [B, T, N, K] -> [B, T, N, K]."""
    logits = jnp.einsum("btnk,bsnk->bnts", q, k, preferred_element_type=jnp.float32) * q.shape[-1] ** -0.5
    return jnp.einsum("bnts,bsnk->btnk", jax.nn.softmax(logits, axis=-1).astype(v.dtype), v)


def _layer_norm(dim: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # Two-pass variance, as torch computes it (flax's default E[x^2] - E[x]^2 loses digits on large activations).
    return nnx.LayerNorm(dim, epsilon=eps, use_fast_variance=False, rngs=rngs)


class EncoderLayer(nnx.Module):
    """Pre-norm self-attention then pre-norm MLP, each added to the residual stream. h [B, T, D] -> [B, T, D]."""

    def __init__(self, cfg: CLIPVisionConfig, rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.cfg = cfg
        self.layer_norm1 = _layer_norm(d, cfg.layer_norm_eps, rngs)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nnx.Linear(d, d, rngs=rngs) for _ in range(4))
        self.layer_norm2 = _layer_norm(d, cfg.layer_norm_eps, rngs)
        self.fc1 = nnx.Linear(d, cfg.intermediate_size, rngs=rngs)
        self.fc2 = nnx.Linear(cfg.intermediate_size, d, rngs=rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        heads = lambda a: a.reshape(*a.shape[:-1], self.cfg.num_attention_heads, -1)  # noqa: E731
        x = self.layer_norm1(h)
        out = attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)))
        h = h + self.out_proj(out.reshape(h.shape))
        return h + self.fc2(ACTIVATIONS[self.cfg.hidden_act](self.fc1(self.layer_norm2(h))))


class CLIPVision(nnx.Module):
    """Normalised pixels [B, H, W, 3] (H = W = image_size) -> hidden_states[-2] [B, 1 + (H/patch)^2, hidden_size]."""

    def __init__(self, cfg: CLIPVisionConfig, *, rngs: nnx.Rngs):
        cfg.validate()
        self.cfg = cfg
        d, p = cfg.hidden_size, cfg.patch_size
        self.class_embedding = nnx.Param(jax.random.normal(rngs.params(), (d,)) * d**-0.5)
        # Conv2d with stride = kernel = patch and no bias: one linear map per non-overlapping patch.
        self.patch_embedding = nnx.Conv(3, d, (p, p), strides=(p, p), padding="VALID", use_bias=False, rngs=rngs)
        self.position_embedding = nnx.Param(jax.random.normal(rngs.params(), (cfg.num_tokens, d)) * 0.02)
        self.pre_layrnorm = _layer_norm(d, cfg.layer_norm_eps, rngs)  # sic: transformers' spelling

        @nnx.split_rngs(splits=cfg.num_hidden_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_layers(rngs: nnx.Rngs) -> EncoderLayer:
            return EncoderLayer(cfg, rngs)

        self.layers = make_layers(rngs)
        self.post_layernorm = _layer_norm(d, cfg.layer_norm_eps, rngs)

    def __call__(self, pixel_values: jax.Array) -> jax.Array:
        cfg = self.cfg
        B, H, W, C = pixel_values.shape
        if (H, W, C) != (cfg.image_size, cfg.image_size, 3):
            raise WanjaxError(
                f"pixel_values have shape {pixel_values.shape}; expected [B, {cfg.image_size}, {cfg.image_size}, 3] "
                f"(the position table is fixed; io/clip_image.preprocess resizes and crops to it)"
            )
        patches = self.patch_embedding(pixel_values.astype(jnp.float32)).reshape(B, -1, cfg.hidden_size)
        cls = jnp.broadcast_to(self.class_embedding[...], (B, 1, cfg.hidden_size))
        h = self.pre_layrnorm(jnp.concatenate([cls, patches], axis=1) + self.position_embedding[...])
        graphdef, params = nnx.split(self.layers)

        def layer(i: jax.Array, h: jax.Array) -> jax.Array:
            return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], params))(h)

        # Only the first L - 1 layers: indexing the stacked parameters per step copies one layer, not L - 1.
        return jax.lax.fori_loop(0, cfg.num_hidden_layers - 1, layer, h)
