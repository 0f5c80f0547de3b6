"""Compiled brush tracks -> the DiT's motion input (`wanjax.model.motion.Motion`), on the host.

    motion = motion_input([compile_brushes(b) for b in files], vae_cfg)   # numpy arrays, static shapes

What the model does with it (the sparse trajectory embedding, the warp guide) lives in wanjax.model.motion and
wanjax.model.guide. Shapes: B batch, P track points, T video frames, F latent frames, k sub-frames.
"""

from __future__ import annotations

import numpy as np

from wanjax.config import VAEConfig
from wanjax.model.motion import MAX_BRUSHES, Motion
from wanjax.motion.tracks import Tracks


def frame_groups(frames: int, subframes: int) -> np.ndarray:
    """Video frame index [F, k] of each sub-frame of each latent frame: latent frame 0 is frame 0 (k times, as the
    causal VAE encodes it alone), latent frame i >= 1 holds frames k(i-1)+1 ... k i."""
    rest = np.arange(1, frames).reshape(-1, subframes)
    return np.concatenate([np.zeros((1, subframes), np.int64), rest])


def motion_input(tracks: list[Tracks], vae: VAEConfig, strength: float = 1.0) -> Motion:
    """Compiled tracks of B clips (equal P and T) -> Motion in latent-grid units (numpy arrays).

    A pixel centre x maps to latent cell coordinate (x - (s - 1) / 2) / s for spatial stride s."""
    s = vae.spatial_stride
    groups = frame_groups(tracks[0].frames, vae.temporal_stride)
    stack = lambda name: np.stack([getattr(t, name) for t in tracks])  # noqa: E731
    xy = (stack("xy")[:, :, groups] - (s - 1) / 2) / s  # [B, P, F, k, 2]
    return Motion(
        xy=xy.astype(np.float32),
        visible=stack("visible")[:, :, groups],
        valid=stack("valid"),
        kind=np.maximum(stack("kind"), 0).astype(np.int32),
        brush=np.clip(stack("brush_id"), 0, MAX_BRUSHES - 1).astype(np.int32),
        strength=np.full(len(tracks), strength, np.float32),
    )
