"""3-axis rotary position embedding (time, height, width) as Wan uses it.

The head dim K is split into K/2 rotation pairs: the last 2*(K//6)//2 pairs each for width and height, the
rest for time (diffusers `WanRotaryPosEmbed`: h_dim = w_dim = 2*(K//6), t_dim = K - h_dim - w_dim). Pairs
are interleaved (x[2i], x[2i+1]). Angles are computed in float64 on the host, as the reference does, and
only then rounded to the compute dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels per axis (t, h, w) of a head of size K."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def _inv_freq(dim: int, theta: float) -> np.ndarray:
    return 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)


def rope_angles(frames: np.ndarray, height: int, width: int, head_dim: int, theta: float = 10000.0) -> np.ndarray:
    """Rotation angles [L, K/2] for tokens in time-major order over latent frame positions `frames` [F].

    `frames` are absolute positions, so a window of a longer clip (or a zigzag shard) keeps its true RoPE.
    """
    t_dim, h_dim, w_dim = axis_dims(head_dim)
    frames = np.asarray(frames, np.float64)
    ang_t = frames[:, None] * _inv_freq(t_dim, theta)  # [F, t/2]
    ang_h = np.arange(height, dtype=np.float64)[:, None] * _inv_freq(h_dim, theta)
    ang_w = np.arange(width, dtype=np.float64)[:, None] * _inv_freq(w_dim, theta)
    F, H, W = len(frames), height, width
    grid = np.concatenate(
        [
            np.broadcast_to(ang_t[:, None, None], (F, H, W, t_dim // 2)),
            np.broadcast_to(ang_h[None, :, None], (F, H, W, h_dim // 2)),
            np.broadcast_to(ang_w[None, None, :], (F, H, W, w_dim // 2)),
        ],
        axis=-1,
    )
    return grid.reshape(F * H * W, head_dim // 2)


def rope_tables(angles: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """(cos, sin) [L, K/2] in fp32 (rounded from float64, like the reference)."""
    return jnp.asarray(np.cos(angles), jnp.float32), jnp.asarray(np.sin(angles), jnp.float32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate interleaved pairs. x [B, L, N, K], cos/sin [L, K/2] -> [B, L, N, K]."""
    pairs = x.astype(jnp.float32).reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = jnp.stack([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)
