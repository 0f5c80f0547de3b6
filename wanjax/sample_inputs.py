"""What `run_sample` (`wanjax sample`) feeds `generate` besides noise and text: the first (and last) frame read
from image files, the check that an image-to-video model gets one, and Wan2.1-I2V/FLF2V's CLIP image tokens."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from wanjax.config import ModelConfig
from wanjax.errors import WanjaxError
from wanjax.io.clip_image import ImageProcessorConfig, preprocess
from wanjax.model.clip import CLIPVision


def read_image(path: str | Path, flag: str = "--image") -> np.ndarray:
    """A frame from an image file -> uint8 [H, W, 3] (grey is repeated, alpha dropped); errors name `flag`."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise WanjaxError(f"{flag} {path} not found; give a PNG/JPEG frame")
    try:
        img = np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises several unrelated types for unreadable files
        raise WanjaxError(f"{flag} {path} is not a readable image ({e})") from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise WanjaxError(f"{flag} {path} has shape {img.shape}; expected an RGB(A) or grey image")
    if img.dtype != np.uint8:
        raise WanjaxError(f"{flag} {path} is {img.dtype}; save it as 8-bit RGB")
    return img[..., :3]


def read_frames(image: str | Path | None, last_image: str | Path | None) -> tuple[np.ndarray | None, ...]:
    """(first, last) frames uint8 [H, W, 3] of --image and --last-image (None where not given); one size."""
    if last_image is not None and image is None:
        raise WanjaxError("--last-image needs --image: a first-last-frame video starts from the first frame")
    first = None if image is None else read_image(image)
    last = None if last_image is None else read_image(last_image, "--last-image")
    if last is not None and last.shape != first.shape:
        (h, w), (lh, lw) = first.shape[:2], last.shape[:2]
        raise WanjaxError(
            f"--last-image {last_image} is {lw}x{lh} pixels but --image {image} is {w}x{h}; give two images of one size"
        )
    return first, last


def require_image(model: ModelConfig, source: str, first: np.ndarray | None) -> None:
    """An image-to-video model (condition channels or CLIP image tokens) cannot sample without a first frame."""
    if first is not None:
        return
    reads = None
    if model.in_channels != model.out_channels:
        reads = f"model.in_channels={model.in_channels}: noise + mask + image latent"
    elif model.image_dim is not None:
        reads = f"model.image_dim={model.image_dim}: CLIP image tokens"
    if reads:
        raise WanjaxError(f"{source} is an image-to-video model ({reads}): give its first frame with --image PNG")


def image_tokens(
    clip: CLIPVision, processor: ImageProcessorConfig, model: ModelConfig, first: np.ndarray, last: np.ndarray | None
) -> jax.Array:
    """CLIP image tokens [1, I, image_dim] of the first frame uint8 [H, W, 3] (I = the encoder's N tokens); for a
    first-last-frame DiT (FLF2V: model.pos_embed_seq_len = 2N) the first frame's then the last frame's (I = 2N),
    as diffusers' `WanImageToVideoPipeline` feeds them. Another DiT reads the first frame's only."""
    n = clip.cfg.num_tokens
    images = [first]
    if model.pos_embed_seq_len == 2 * n:
        if last is None:
            raise WanjaxError(
                f"this is a first-last-frame model (model.pos_embed_seq_len={2 * n}: two images' CLIP tokens): give "
                "the last frame too, --last-image PNG"
            )
        images.append(last)
    tokens = clip(jnp.asarray(preprocess(images, processor)))  # [len(images), N, image_dim]
    return tokens.reshape(1, len(images) * n, tokens.shape[-1])
