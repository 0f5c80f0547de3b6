"""Diffusers reference models with every parameter random, for the parity tests (torch: the `parity` extra)."""

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from wanjax.config import ModelConfig
from wanjax.io.dit_params import model_config_to_diffusers


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref|: the parity tests' measure."""
    return float(np.abs(np.asarray(ours) - np.asarray(ref)).max() / np.abs(np.asarray(ref)).max())


def random_transformer(cfg: ModelConfig, seed: int = 0) -> WanTransformer3DModel:
    """diffusers' WanTransformer3DModel of our config, every parameter N(0, 0.2²) (norm scales and the
    zero-initialised ones too, so that their layout counts)."""
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in model_config_to_diffusers(cfg).items() if not k.startswith("_")}
    model = WanTransformer3DModel(**kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def random_vae(config: dict, seed: int = 0) -> AutoencoderKLWan:
    """diffusers' AutoencoderKLWan with its gammas (ones at init) and biases (zeros) made random too."""
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(**config).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return vae


def latent_stats(vae: AutoencoderKLWan) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE's latents_mean and latents_std shaped [1, z, 1, 1, 1] (diffusers' layout)."""
    shape = (1, -1, 1, 1, 1)
    return torch.tensor(vae.config.latents_mean).view(shape), torch.tensor(vae.config.latents_std).view(shape)
