"""wanjax: Wan-architecture video diffusion transformers in JAX / Flax NNX (see DESIGN.md, Public API)."""

from wanjax import motion
from wanjax.config import Config, load_config
from wanjax.errors import WanjaxError
from wanjax.io.dit_params import load_dit, save_dit
from wanjax.io.text_params import load_text_encoder, load_tokenizer, save_text_encoder
from wanjax.io.vae_params import load_vae, save_vae
from wanjax.model.attention import attention
from wanjax.model.dit import WanDiT
from wanjax.model.text import UMT5Encoder, encode_prompts
from wanjax.model.vae import WanVAE
from wanjax.parallel.mesh import make_mesh

__all__ = [
    "Config",
    "UMT5Encoder",
    "WanDiT",
    "WanVAE",
    "WanjaxError",
    "attention",
    "encode_prompts",
    "load_config",
    "load_dit",
    "load_text_encoder",
    "load_tokenizer",
    "load_vae",
    "make_mesh",
    "motion",
    "save_dit",
    "save_text_encoder",
    "save_vae",
]
