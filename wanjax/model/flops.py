"""Analytic FLOPs of a WanDiT forward and forward+backward: every matmul and both attention products.

Elementwise work (norms, RoPE, softmax, GELU, modulation) is left out: it is what "model FLOPs" leave out,
and on every machine it is a small share next to the matmuls. A multiply-add counts 2. Shapes: B batch,
L tokens, M text tokens, D model dim, P values per patch (pt·ph·pw·C).
"""

from __future__ import annotations

import numpy as np

from wanjax.config import ModelConfig


def dit_flops(cfg: ModelConfig, frames: int, height: int, width: int, text_tokens: int, batch: int = 1) -> dict:
    """{'forward', 'backward', 'step' (= forward + backward), 'attention' (self-attention QKᵀ and PV, forward)}
    for latents [batch, frames, height, width, C] and text [batch, text_tokens, text_dim].

    As WanDiT computes it: the time embedding runs once per latent frame. Backward is 2 × forward, less the
    input-gradient matmuls nothing needs (patch embedding, the first text and time linears: their inputs are
    data); no rematerialisation is counted (model FLOPs, whatever the remat policy).
    """
    pt, ph, pw = cfg.patch_size
    Fp = frames // pt
    L, M, D, E = Fp * (height // ph) * (width // pw), text_tokens, cfg.dim, cfg.ffn_dim
    P_in = pt * ph * pw * cfg.in_channels * (2 if cfg.first_frame_concat else 1)  # + the first frame's patch
    P_out = pt * ph * pw * cfg.out_channels
    self_attn = 4 * 2 * L * D * D + 2 * 2 * L * L * D  # q, k, v, out projections; QKᵀ and PV over all heads
    cross_attn = 2 * 2 * L * D * D + 2 * 2 * M * D * D + 2 * 2 * L * M * D  # q, out; k, v of the text; QKᵀ, PV
    ffn = 2 * 2 * L * D * E
    inputs = 2 * L * P_in * D + 2 * M * cfg.text_dim * D + 2 * Fp * cfg.freq_dim * D  # first linears on data
    embed = inputs + 2 * M * D * D + 2 * Fp * (D * D + 6 * D * D) + 2 * L * D * P_out
    forward = batch * (cfg.num_layers * (self_attn + cross_attn + ffn) + embed)
    backward = 2 * forward - batch * inputs
    attention = batch * cfg.num_layers * 4 * L * L * D
    return {"forward": float(forward), "backward": float(backward), "step": float(forward + backward),
            "attention": float(attention)}  # fmt: skip


def tokens(cfg: ModelConfig, frames: int, height: int, width: int) -> int:
    return int(np.prod([n // p for n, p in zip((frames, height, width), cfg.patch_size, strict=True)]))


def train_step_flops(cfg: ModelConfig, batch: dict) -> float:
    """Model FLOPs of one training step (forward + backward) on a model batch {"latents": [B, F, H, W, C],
    "context": [B, M, text_dim], ...}: the count logged as flops_per_s / mfu. Not XLA's cost analysis, which
    counts a scanned layer's body once, not num_layers times."""
    B, F, H, W, _ = batch["latents"].shape
    return dit_flops(cfg, F, H, W, batch["context"].shape[1], B)["step"]
