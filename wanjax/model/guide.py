"""The first frame warped along brush tracks: a dense guide video for the clean-sample head (`model.residual=warp`).

    base = warp_guide(first_latent, motion, pixel_size=4, subframes=4, frames=F)   # [B, F, h, w, C]

The tracks' displacements from frame 0 are Gaussian-splatted (cut at REACH_PX) at the points' *current* positions,
in layers (LAYERS: a sprite's points win over the background's), which gives a backward flow per video frame (where
each pixel of frame f came from in frame 0); frame 0 is sampled there bilinearly. Beyond every track's reach the
flow is 0, so what no brush moves stays put; what a moved region uncovers (a hole) is filled from the pixels
around it (`fill`). With no tracks (brushes dropped) the guide is the first frame itself.

The latents are the pixel codec's (`wanjax.model.pixel`): space-to-depth of s x s pixels x k video frames x rgb,
so the warp runs at pixel resolution and sub-frame precision. Pure jnp; no parameters.
Shapes: B batch, P points, F latent frames, k sub-frames, h w latent grid, H W pixels (H = h s), C = k s s 3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wanjax.model.motion import KINDS, Motion, bilinear
from wanjax.model.pixel import fold, unfold

SIGMA_PX = 1.0  # splat radius in pixels: each pixel follows, softly, the nearest track point
FILL_SIGMAS_PX = (2.0, 8.0)  # hole filling: local mean first, wider where nothing is known nearby
REACH_PX = 3.0
# Layers, by brush mode (KINDS): the camera's background points under a flow's, under the sprites' (path, sway,
# static): where a higher layer's points reach, they decide how a pixel moves.
LAYERS = tuple({"camera": 0, "flow": 1}.get(kind, 2) for kind in KINDS)
LAYER_SCALE = 1000.0  # pixels farther than this from every point do not move (brush seeds lie 4 px apart: <= 2.9 px)


def layer_weights(kind: jax.Array) -> jax.Array:
    """Splat weight scale [B, P] of each point by its brush's layer (LAYERS): 1000^layer, so that wherever a point of
    a higher layer reaches, it outweighs every point of the lower ones (their summed weights stay under 10)."""
    return jnp.asarray(LAYER_SCALE, jnp.float32) ** jnp.asarray(LAYERS, jnp.float32)[kind]


def backward_flow(
    xy: jax.Array, start: jax.Array, weight: jax.Array, height: int, width: int, sigma: float = SIGMA_PX
):  # fmt: skip
    """Dense backward flow [B, F, k, H, W, 2] (px) and the top layer reaching each pixel int32 [B, F, k, H, W] (-1:
    none). At each pixel the flow is the displacement from frame 0 of the track points near it, weighted by
    exp(-d² / 2σ²) x their layer scale (a soft nearest point of the top layer: regions keep sharp edges, and what
    moves on top of the background wins); 0 where no point is within REACH_PX.

    xy [B, P, F, k, 2] point positions in pixels (x, y); start [B, P, 2] their positions in frame 0; weight
    [B, P, F, k] (0: point absent, else layer_weights).
    The weights are separable, so the sums over points are one batched matmul per sub-frame: [H, P] @ [P, 3 W]."""
    xy, disp = jnp.moveaxis(xy, 1, 3), jnp.moveaxis(xy - start[:, :, None, None], 1, 3)  # [B, F, k, P, 2]

    def axis(coord, size):  # [B, F, k, P] -> [B, F, k, P, size]
        d = jnp.arange(size, dtype=jnp.float32) - coord[..., None]
        return jnp.where(jnp.abs(d) <= REACH_PX, jnp.exp(-0.5 * jnp.square(d / sigma)), 0.0)

    wx, wy = axis(xy[..., 0], width) * jnp.moveaxis(weight, 1, 3)[..., None], axis(xy[..., 1], height)
    rows = jnp.stack([wx * disp[..., :1], wx * disp[..., 1:], wx], axis=-2)  # [B, F, k, P, 3, W]
    sums = jnp.einsum("bfkpy,bfkpz->bfkyz", wy, rows.reshape(*rows.shape[:-2], 3 * width))
    sums = sums.reshape(*sums.shape[:-1], 3, width)  # [B, F, k, H, 3, W]: flow numerators x, y; denominator
    num, den = jnp.moveaxis(sums[..., :2, :], -2, -1), sums[..., 2, :]
    edge = np.exp(-0.5 * (REACH_PX / sigma) ** 2)  # one point at REACH_PX
    layer = sum((den >= edge * LAYER_SCALE**i).astype(jnp.int32) for i in range(max(LAYERS) + 1)) - 1
    return jnp.where((layer >= 0)[..., None], num / jnp.maximum(den, 1e-30)[..., None], 0.0), layer


def warp_guide(first_latent: jax.Array, motion: Motion | None, pixel_size: int, subframes: int, frames: int):
    """first_latent [B, h, w, C] (clean latent frame 0) and brush tracks -> guide latents [B, F, h, w, C]: frame 0
    moved along the tracks, per video frame. No motion: frame 0 repeated."""
    B, h, w, C = first_latent.shape
    if motion is None:
        return jnp.broadcast_to(first_latent[:, None], (B, frames, h, w, C))
    s, k = pixel_size, subframes
    image = unfold(first_latent.astype(jnp.float32)[:, None], s, k)[:, 0, 0]  # sub-frame 0: [B, H, W, 3]
    H, W = image.shape[1:3]
    xy = motion.xy * s + (s - 1) / 2  # latent cells -> pixel centres
    # Points that left the frame still tell how what is near them moves (the edge pixels they leave behind).
    inside = jnp.all((xy >= -0.5) & (xy < jnp.array([W, H], jnp.float32) - 0.5), axis=-1)
    present = (motion.visible | ~inside) & motion.valid[:, :, None, None]
    weight = present * layer_weights(motion.kind)[:, :, None, None]
    grid = jnp.stack(jnp.meshgrid(jnp.arange(W, dtype=jnp.float32), jnp.arange(H, dtype=jnp.float32)), axis=-1)
    # Latent frame 0 is frame 0 itself (k times; its points have not moved): only frames 1 … are warped.
    start = xy[:, :, 0, 0]
    first_layer = backward_flow(xy[:, :, :1, :1], start, weight[:, :, :1, :1], H, W)[1][:, 0, 0]  # [B, H, W]
    flow, layer = backward_flow(xy[:, :, 1:], start, weight[:, :, 1:], H, W)  # [B, F-1, k, H, W, 2], [.., H, W]
    source = grid - flow
    # Both the hole fill and the final choice read the warped video: computed per example in a loop, it is stored
    # once instead of recomputed (with the flow and the layer test) inside both fusions.
    warped = jax.lax.map(lambda a: bilinear(a[0][None], a[1][None])[0], (image, source.reshape(B, -1, 2)))
    warped = warped.reshape(B, frames - 1, k, H, W, 3)
    # Holes: pixels whose source belonged, in frame 0, to a higher layer than the one that covers them now (what a
    # moved region uncovers), and pixels whose source lies outside the frame. They get the Gaussian-weighted mean of
    # the pixels around them that are not holes.
    outside = jnp.any((source < -0.5) | (source > jnp.array([W, H], jnp.float32) - 0.5), axis=-1)
    hole = (_lookup(first_layer, source) > layer) | outside
    video = jnp.where(hole[..., None], fill(warped, ~hole), warped)  # [B, F-1, k, H, W, 3]
    # fold per example in a loop: at the loop's edge XLA stores the video in pixel order; fused into the warp, fold's
    # transpose made the warp run in the latent's channel order, reading every input out of order
    guide = jax.lax.map(lambda v: fold(v[None], s)[0], video).astype(first_latent.dtype)
    return jax.lax.stop_gradient(jnp.concatenate([first_latent[:, None], guide], axis=1))


def _lookup(frame_map: jax.Array, source: jax.Array) -> jax.Array:
    """frame_map [B, H, W] at the pixels nearest to source [B, ..., H, W, 2] (x, y; clamped) -> [B, ..., H, W]."""
    B, H, W = frame_map.shape
    j, i = (jnp.clip(jnp.floor(source[..., a] + 0.5), 0, n - 1).astype(jnp.int32) for a, n in ((0, W), (1, H)))
    out = jax.vmap(lambda m, at: m[at])(frame_map.reshape(B, H * W), (i * W + j).reshape(B, -1))
    return out.reshape(source.shape[:-1])


def fill(video: jax.Array, known: jax.Array, sigmas: tuple[float, ...] = FILL_SIGMAS_PX) -> jax.Array:
    """Normalised convolution: video [..., H, W, 3] averaged over the `known` [..., H, W] pixels with Gaussian
    weights, the narrowest radius in `sigmas` that reaches a known pixel winning. Separable: two matmuls per radius
    on the channel planes [..., 4, H, W] (rgb and the known-pixel count)."""
    H, W = known.shape[-2:]
    out = video
    planes = jnp.moveaxis(jnp.concatenate([video, jnp.ones_like(video[..., :1])], axis=-1) * known[..., None], -1, -3)
    for sigma in sigmas[::-1]:  # widest first, so narrower ones overwrite where they reach
        gy, gx = (jnp.exp(-0.5 * jnp.square((jnp.arange(n)[:, None] - jnp.arange(n)[None]) / sigma)) for n in (H, W))
        blurred = jnp.moveaxis(gy @ (planes @ gx.T), -3, -1)  # [..., H, W, 4]
        num, den = blurred[..., :-1], blurred[..., -1:]
        out = jnp.where(den > 1e-3, num / jnp.maximum(den, 1e-30), out)
    return out
