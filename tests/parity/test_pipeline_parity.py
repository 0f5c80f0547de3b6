"""`wanjax.sample.generate` vs diffusers' Wan pipelines (`output_type="latent"`), every family, same tiny random
weights (diffusers' modules saved and loaded by our converters): 3 UniPC steps from the same noise, with the same
image(s) and prompt embeddings, give the same latents. The A14B cases cross the expert boundary inside those steps
(timesteps 999, 857, 600 at shift 3: boundary 0.875 / 0.9 hands over after the first step)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import pytest
import torch
import transformers
from diffusers import (
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
)
from flax import nnx
from reference_models import random_transformer, random_vae, rel_err

from wanjax.config import Config, ModelConfig, SampleConfig, VAEConfig
from wanjax.io.clip_image import load_image_processor, preprocess
from wanjax.io.clip_params import load_clip
from wanjax.io.dit_params import load_dit
from wanjax.io.vae_params import load_vae
from wanjax.sample import generate

pytestmark = pytest.mark.parity

FRAMES, STEPS, SHIFT, TEXT_DIM = 9, 3, 3.0, 20
DIT = ModelConfig(dim=96, ffn_dim=136, num_heads=2, num_layers=2, text_dim=TEXT_DIM, freq_dim=32)
VAE21 = {"base_dim": 6, "z_dim": 16, "dim_mult": [1, 2, 3, 3], "num_res_blocks": 1}
STATS = {"latents_mean": list(VAEConfig.wan22().latents_mean), "latents_std": list(VAEConfig.wan22().latents_std)}
VAE22 = {"base_dim": 4, "decoder_base_dim": 6, "z_dim": 48, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 1,
         "is_residual": True, "patch_size": 2, "in_channels": 12, "out_channels": 12, "scale_factor_spatial": 16,
         **STATS}  # fmt: skip
CLIP = {"hidden_size": 44, "intermediate_size": 52, "num_hidden_layers": 3, "num_attention_heads": 4,
        "patch_size": 7, "image_size": 28, "hidden_act": "gelu"}  # fmt: skip
CLIP_TOKENS = 1 + (28 // 7) ** 2
PROCESSOR = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
# family: (DiT changes, VAE, CLIP image encoder, last image, experts' boundary, expand_timesteps)
FAMILIES = {
    "wan2.1-i2v": ({"in_channels": 36, "image_dim": 44, "added_kv_proj_dim": 96}, VAE21, True, False, None, False),
    "wan2.1-flf2v": (
        {"in_channels": 36, "image_dim": 44, "added_kv_proj_dim": 96, "pos_embed_seq_len": 2 * CLIP_TOKENS},
        VAE21,
        True,
        True,
        None,
        False,
    ),  # fmt: skip
    "wan2.2-ti2v": ({"in_channels": 48, "out_channels": 48}, VAE22, False, False, None, True),
    "wan2.2-i2v-a14b": ({"in_channels": 36}, VAE21, False, False, 0.9, False),
    "wan2.2-t2v-a14b": ({}, VAE21, False, False, 0.875, False),
}
SIZE = {"wan2.2-ti2v": (32, 64)}  # stride 16 x patch 2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_latents_match_diffusers_pipeline(family, tmp_path):
    changes, vae_kw, clip, last, boundary, expand = FAMILIES[family]
    height, width = SIZE.get(family, (32, 48))
    cfg = dataclasses.replace(DIT, **changes)
    experts = [random_transformer(cfg, seed) for seed in ((0, 1) if boundary else (0,))]
    vae = random_vae(vae_kw, seed=2)
    parts = {"transformer": experts[0], "vae": vae}
    if boundary:
        parts["transformer_2"] = experts[1]
    if clip:
        torch.manual_seed(3)
        encoder = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**CLIP)).eval()
        with torch.no_grad():
            for p in encoder.parameters():
                p.normal_(0.0, 0.3)
        processor = PROCESSOR(crop_size={"height": 28, "width": 28}, size={"shortest_edge": 28})
        parts |= {"image_encoder": encoder, "image_processor": processor}
    for name, module in parts.items():
        module.save_pretrained(tmp_path / name)

    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=SHIFT,
                                        num_train_timesteps=1000, solver_order=2)  # fmt: skip
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (height, width, 3), np.uint8)
    last_image = rng.integers(0, 256, (height, width, 3), np.uint8) if last else None
    prompt = rng.standard_normal((1, 512, TEXT_DIM)).astype(np.float32)
    F, z, s = (FRAMES - 1) // 4 + 1, vae_kw["z_dim"], vae.config.scale_factor_spatial
    noise = rng.standard_normal((1, F, height // s, width // s, z)).astype(np.float32)

    common = {"prompt_embeds": torch.from_numpy(prompt), "height": height, "width": width, "num_frames": FRAMES,
              "num_inference_steps": STEPS, "guidance_scale": 1.0, "output_type": "latent",
              "latents": torch.from_numpy(noise.transpose(0, 4, 1, 2, 3).copy())}  # fmt: skip
    if boundary:
        common["guidance_scale_2"] = 1.0
    pipe_parts = {"tokenizer": None, "text_encoder": None, "scheduler": scheduler, "boundary_ratio": boundary,
                  "expand_timesteps": expand, **parts}  # fmt: skip
    with torch.no_grad():
        if family == "wan2.2-t2v-a14b":
            pipe_parts.pop("expand_timesteps")
            ref = WanPipeline(**pipe_parts)(**common).frames
        else:
            extra = {} if last_image is None else {"last_image": PIL.Image.fromarray(last_image)}
            ref = WanImageToVideoPipeline(**pipe_parts)(image=PIL.Image.fromarray(image), **common, **extra).frames
    ref = ref.float().numpy().transpose(0, 2, 3, 4, 1)

    sample = SampleConfig(frames=FRAMES, height=height, width=width, steps=STEPS, solver="unipc", shift=SHIFT,
                          guidance_text=1.0, timesteps="wan", boundary_ratio=boundary)  # fmt: skip
    dit, ours_vae = load_dit(tmp_path / "transformer"), load_vae(tmp_path / "vae")
    run = Config(model=dit.cfg, vae=ours_vae.cfg, sample=sample)
    kw = {"noise": jnp.asarray(noise), "progress": False}
    if family != "wan2.2-t2v-a14b":
        kw["image"] = image[None]
    if last_image is not None:
        kw["last_image"] = last_image[None]
    if boundary:
        kw["expert_2"] = load_dit(tmp_path / "transformer_2")
    if clip:
        encoder, proc = load_clip(tmp_path / "image_encoder"), load_image_processor(tmp_path / "image_processor")
        images = [image] if last_image is None else [image, last_image]
        tokens = encoder(jnp.asarray(preprocess(images, proc)))  # [images, I, image_dim]
        kw["image_context"] = tokens.reshape(1, -1, tokens.shape[-1])
    _, ours = generate(dit, ours_vae, run, 0, jnp.asarray(prompt), **kw)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) <= 1e-4  # measured 4.7e-7 .. 6.6e-7
    if boundary:
        # One expert on the devices at a time: the same latents; afterwards the first is on the devices again and
        # the second in host memory.
        offload = dataclasses.replace(run, sample=dataclasses.replace(sample, expert_offload=True))
        np.testing.assert_array_equal(generate(dit, ours_vae, offload, 0, jnp.asarray(prompt), **kw)[1], ours)
        kinds = lambda m: {a.sharding.memory_kind for a in jax.tree.leaves(nnx.state(m))}  # noqa: E731
        assert kinds(dit) == {"device"} and kinds(kw["expert_2"]) == {"pinned_host"}
        # the second expert counts: the first alone throughout gives other latents
        kw.pop("expert_2")
        one = dataclasses.replace(run, sample=dataclasses.replace(sample, boundary_ratio=None))
        assert rel_err(generate(dit, ours_vae, one, 0, jnp.asarray(prompt), **kw)[1], ref) > 1e-2
