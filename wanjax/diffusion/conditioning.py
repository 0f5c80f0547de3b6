"""What an image-to-video Wan model sees besides the noise, built as diffusers' `WanImageToVideoPipeline` builds it.

Two ways, chosen by the model's channels:
* channel condition (Wan2.1-I2V / FLF2V, Wan2.2-I2V-A14B: in_channels = out_channels + 4 + z_dim): every step's
  DiT input is [noise latents, mask, image latent] along channels. The image latent is the VAE latent of the video
  [image, zeros ..., (last image)]; the mask says, for each latent frame's `stride` video frames, which are given
  (latent frame 0 stands for video frame 0 alone, repeated `stride` times, as the causal VAE encodes it).
* clean first frame (Wan2.2-TI2V-5B, the toy models): latent frame 0 is the image's latent at sigma 0 throughout
  (wanjax.sample.generate; per-frame timesteps, diffusers' `expand_timesteps`).

Shapes: B batch, T video frames, F latent frames, h w latent grid, z latent channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wanjax.errors import WanjaxError


def frame_mask(frames: int, stride: int, last: bool) -> np.ndarray:
    """Given-frame mask [F, stride] (float32) of a T = `frames` video: latent frame 0's channels are all 1 (video
    frame 0), latent frame f >= 1 has channel j for video frame stride (f - 1) + 1 + j; with `last`, the last video
    frame is given too."""
    given = np.zeros(frames + stride - 1, np.float32)  # video frame 0 repeated `stride` times, then frames 1 ...
    given[:stride] = 1.0
    if last:
        given[-1] = 1.0
    return given.reshape(-1, stride)


def condition_video(image: np.ndarray, last_image: np.ndarray | None, frames: int) -> np.ndarray:
    """image (and last_image) uint8 [B, H, W, 3] -> the video the VAE encodes, float32 [B, T, H, W, 3] in [-1, 1]:
    the image, zeros (mid-grey), and the last image as frame T - 1."""
    if last_image is not None and last_image.shape != image.shape:
        raise WanjaxError(
            f"--last-image is {last_image.shape[1:3]} but --image is {image.shape[1:3]}: give two images of one size"
        )
    to_unit = lambda a: np.asarray(a, np.float32) / 127.5 - 1.0  # noqa: E731
    video = np.zeros((image.shape[0], frames, *image.shape[1:]), np.float32)
    video[:, 0] = to_unit(image)
    if last_image is not None:
        video[:, -1] = to_unit(last_image)
    return video


def channel_condition(encode, image: np.ndarray, last_image: np.ndarray | None, frames: int, stride: int):
    """The condition channels [B, F, h, w, stride + z] (mask, then image latent) for `frames` video frames; encode:
    video [B, T, H, W, 3] -> normalised latents [B, F, h, w, z] (the VAE's)."""
    latent = encode(jnp.asarray(condition_video(image, last_image, frames)))
    mask = jnp.asarray(frame_mask(frames, stride, last_image is not None))  # [F, stride]
    mask = jnp.broadcast_to(mask[None, :, None, None], (*latent.shape[:4], stride))
    return jnp.concatenate([mask.astype(latent.dtype), latent], axis=-1)


def expert_switch(sigmas: np.ndarray, boundary_ratio: float) -> int:
    """The first step whose (integer) timestep is below boundary_ratio x 1000, where Wan2.2 A14B hands over from
    its high-noise expert to its low-noise one (diffusers: `t >= boundary_timestep` keeps the first). sigmas
    [steps + 1, F] with equal columns."""
    if not np.all(sigmas == sigmas[:, :1]):
        raise WanjaxError("two experts switch by the timestep of the whole clip: use sample.schedule=synchronous")
    t = np.trunc(np.asarray(sigmas[:-1, 0], np.float64) * 1000)
    below = np.flatnonzero(t < boundary_ratio * 1000)
    return int(below[0]) if below.size else len(t)


def with_condition(x: jax.Array, condition: jax.Array | None) -> jax.Array:
    """The DiT input: latents x [B, F, h, w, C] with the condition channels appended (or x itself)."""
    return x if condition is None else jnp.concatenate([x, condition.astype(x.dtype)], axis=-1)
