"""The studio's model: loaded once per app, then one generation at a time from a first frame and a brush file.

The same path as `wanjax sample` (`run_sample`): the checkpoint's architecture over CONFIG's, the brushes compiled to
tracks and injected as sparse trajectory embeddings, image-to-video from the first frame, no prompt.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from wanjax.config import load_config
from wanjax.errors import WanjaxError
from wanjax.io.export import write_video
from wanjax.model.dit import WanDiT
from wanjax.model.pixel import make_vae
from wanjax.motion import Tracks, compile_brushes
from wanjax.motion.draw import overlay_video
from wanjax.motion.embed import motion_input
from wanjax.sample import ASSETS, default_checkpoint, generate
from wanjax.sample_inputs import image_tokens

MAX_SIDE = 4096  # px: larger uploads are refused before any resizing
MAX_STEPS = 100
VIDEO_SCALE = 4  # the videos shown on the page are upscaled (nearest): a 64-px clip is unreadable otherwise


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An uploaded picture as the model's first frame uint8 [H, W, 3] for size (W, H): grey and alpha handled, the
    centre cropped to the frame's aspect, then resized (Lanczos). Pictures over MAX_SIDE px a side are refused."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
        raise WanjaxError(f"the picture is {image.dtype} {list(image.shape)}; upload an 8-bit RGB(A) or grey PNG/JPEG")
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        raise WanjaxError(f"the picture is {w}x{h} pixels; the studio takes at most {MAX_SIDE} a side: downscale it")
    width, height = size
    image = image[..., :3]
    if (w, h) == (width, height):
        return image
    crop_w, crop_h = min(w, round(h * width / height)), min(h, round(w * height / width))
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    img = Image.fromarray(image[top : top + crop_h, left : left + crop_w])
    return np.asarray(img.resize((width, height), Image.Resampling.LANCZOS))


def upscale(video: np.ndarray, scale: int) -> np.ndarray:
    """[..., H, W, C] -> [..., H * scale, W * scale, C], nearest."""
    return np.repeat(np.repeat(video, scale, axis=-3), scale, axis=-2)


class Engine:
    """A brush model loaded from CONFIG (its sample settings) and a checkpoint (None: `sample.checkpoint`'s, the
    bundled demo model for configs/brushsprites.yaml; random weights without any, as `wanjax sample`)."""

    def __init__(self, config: str | Path | None, ckpt: str | Path | None = None):
        cfg = load_config(config)
        ckpt = Path(ckpt) if ckpt is not None else default_checkpoint(cfg.sample.checkpoint)
        self.pipe = None
        if ckpt is None:
            self.dit, self.vae = WanDiT(cfg.model, rngs=nnx.Rngs(0)), make_vae(cfg.vae, nnx.Rngs(1))
        else:
            from wanjax.io.weights import load_pipeline

            self.pipe = load_pipeline(ckpt)  # the checkpoint's architecture wins over CONFIG's
            self.dit, self.vae = self.pipe.dit, self.pipe.vae
            ratio = self.pipe.boundary_ratio if cfg.sample.boundary_ratio is None else cfg.sample.boundary_ratio
            sample = dataclasses.replace(cfg.sample, boundary_ratio=ratio)
            cfg = dataclasses.replace(cfg, model=self.pipe.cfg.model, vae=self.pipe.cfg.vae, sample=sample)
        self.cfg = cfg.validate()
        self.cfg.check_parts()
        self.source = str(ckpt) if ckpt is not None else "random init (no checkpoint)"
        self.name = f"{ckpt.name} (bundled)" if ckpt is not None and ckpt.parent == ASSETS else self.source
        if cfg.model.motion == "none":
            raise WanjaxError(
                f"{self.source} has no motion input (model.motion=none), so brushes would do nothing; start the "
                "studio with a brush model, e.g. the bundled one: wanjax studio configs/brushsprites.yaml"
            )
        self._lock = threading.Lock()

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the frames the model makes (the config's sample size)."""
        return self.cfg.sample.width, self.cfg.sample.height

    def generate(self, frame: np.ndarray, spec: dict, seed: int, steps: int) -> tuple[np.ndarray, Tracks | None]:
        """(video uint8 [T, H, W, 3], the tracks of its brushes or None) from the first frame uint8 [H, W, 3] and a
        validated brush file (T = its frames; no brushes: the model's own motion). One call at a time: a second
        waits for the first."""
        if not 1 <= steps <= MAX_STEPS:
            raise WanjaxError(f"steps={steps}; use 1 to {MAX_STEPS}")
        sample = dataclasses.replace(self.cfg.sample, frames=spec["frames"], steps=int(steps))
        cfg = dataclasses.replace(self.cfg, sample=sample).validate()
        tracks, motion = None, None
        if spec["brushes"]:
            tracks = compile_brushes(spec, max_tracks=cfg.sample.max_tracks)
            motion = motion_input([tracks], cfg.vae)
        context = jnp.zeros((1, 1, cfg.model.text_dim), jnp.float32)  # no prompt: text-free
        image_context, expert_2 = None, None
        if self.pipe is not None:
            expert_2 = self.pipe.expert_2
            if self.pipe.clip is not None:
                image_context = image_tokens(self.pipe.clip, self.pipe.image_processor, cfg.model, frame, None)
        with self._lock:
            frames, _ = generate(self.dit, self.vae, cfg, int(seed), context, image=frame[None], motion=motion,
                                 image_context=image_context, expert_2=expert_2)  # fmt: skip
        return frames[0], tracks

    def write(self, out: Path, video: np.ndarray, tracks: Tracks | None) -> dict[str, Path]:
        """Write into folder `out`: video.mp4 (the clip as made), shown.mp4 (upscaled by VIDEO_SCALE for the page)
        and, with tracks, tracks.mp4 (the tracks drawn on the clip, `overlay_video`)."""
        fps = self.cfg.sample.fps
        paths = {"video": write_video(out / "video.mp4", video, fps)}
        paths["shown"] = write_video(out / "shown.mp4", upscale(video, VIDEO_SCALE), fps)
        if tracks is not None:
            paths["tracks"] = write_video(out / "tracks.mp4", overlay_video(video, tracks, VIDEO_SCALE), fps)
        return paths
