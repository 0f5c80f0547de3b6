"""`wanjax data build CONFIG --clips DIR`: real clips + captions -> the video_latents set training reads.

    summary = build_video_set(cfg, "clips/", ckpt="Wan2.1-T2V-1.3B-Diffusers")   # ckpt None: train.init

Each clip is cut to data.frames frames, centre-cropped to the aspect of data.width x data.height and resized to
it, then encoded by the checkpoint's VAE (latents), its caption by its UMT5 (context, sample.text_tokens tokens),
and tracked (`wanjax.motion.tracking.track_video`: data.track_points rows, data.track_reseed of them re-seeded).
Finished clips are kept under data_dir/video_latents_clips/, so a build that was stopped resumes where it was; a
clip that cannot be read is named on stderr and in the summary, and left out. Then the TFDS set is written from
what was kept (`wanjax.data.tfds.video_latents`).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from wanjax.config import Config
from wanjax.errors import WanjaxError


def fit_frames(video: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 [T, H, W, 3] centre-cropped to the aspect width / height and resized (area filter) to [T, height,
    width, 3]."""
    import cv2

    h, w = video.shape[1:3]
    if w * height > h * width:  # wider than the target: crop the sides
        crop = round(h * width / height)
        video = video[:, :, (w - crop) // 2 : (w - crop) // 2 + crop]
    else:
        crop = round(w * height / width)
        video = video[:, (h - crop) // 2 : (h - crop) // 2 + crop]
    if video.shape[1:3] == (height, width):
        return video
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in video])


def _encoders(cfg: Config, ckpt: str | Path):
    """encode_video (uint8 [T, H, W, 3] -> latents [F, h, w, C]) and encode_text (caption -> [M, D]) of a
    checkpoint: a diffusers Wan folder (vae/, text_encoder/, tokenizer/; the transformer is not read) or a wanjax
    checkpoint with text parts."""
    import jax.numpy as jnp

    from wanjax.io.vae_params import load_vae
    from wanjax.io.weights import load_checkpoint, load_text
    from wanjax.model.text import encode_prompts

    folder = Path(ckpt)
    if not folder.is_dir():
        raise WanjaxError(f"checkpoint {str(folder)!r} is not a folder; pass --ckpt a diffusers Wan folder")
    vae = load_vae(folder / "vae") if (folder / "vae" / "config.json").is_file() else load_checkpoint(folder)[2]
    text = load_text(folder)
    if text is None:
        raise WanjaxError(f"{folder} has no text_encoder/ + tokenizer/; captions need the checkpoint's UMT5")
    encoder, tokenizer = text
    d, tokens = cfg.data, cfg.sample.text_tokens

    def encode_video(video: np.ndarray) -> np.ndarray:
        x = jnp.asarray(fit_frames(video, d.width, d.height)[None], jnp.float32) / 127.5 - 1.0
        return np.asarray(vae.encode(x)[0])

    def encode_text(caption: str) -> np.ndarray:
        return np.asarray(encode_prompts(encoder, tokenizer, [caption], tokens)[0])

    return encode_video, encode_text


def build_video_set(cfg: Config, clips_dir: str | Path, ckpt: str | Path | None = None, progress: bool = True) -> dict:
    """Build cfg.data's video_latents set from clips_dir (layout: `VideoLatents`) with ckpt's encoders (None:
    train.init). Returns {"clips", "made", "kept" (found from an earlier run), "skipped": {name: why}, "seconds",
    "data_dir", "config"}."""
    from tqdm import tqdm

    from wanjax.data.tfds import get_builder
    from wanjax.motion.tracking import track_video

    d = cfg.data
    if d.name != "video_latents":
        raise WanjaxError(
            f"data.name={d.name!r}: `wanjax data build` builds video_latents; set data.name=video_latents"
        )
    ckpt = ckpt or cfg.train.init
    if ckpt is None:
        raise WanjaxError(
            "no checkpoint for the encoders: pass --ckpt FOLDER (a diffusers Wan folder) or set train.init"
        )
    encode_video, encode_text = _encoders(cfg, ckpt)
    grid, reseed = d.track_points - d.track_reseed, d.track_reseed

    def track(video: np.ndarray):
        return track_video(fit_frames(video, d.width, d.height), points=grid, reseed=reseed)

    skipped: dict[str, str] = {}

    def report(line: str) -> None:
        name = line.removeprefix("skipped ").split(":")[0]
        if name not in skipped:
            skipped[name] = line
            tqdm.write(f"wanjax data build: {line}", file=sys.stderr)  # above the progress bar, not inside it

    builder = get_builder(
        "video_latents", d.data_dir, frames=d.frames, points=d.track_points, clips_dir=clips_dir,
        encode_video=encode_video, encode_text=encode_text, track=track,
        cache_dir=Path(d.data_dir) / "video_latents_clips" / f"t{d.frames}_p{d.track_points}_{d.width}x{d.height}",
        report=report,
    )  # fmt: skip
    t0, made, kept = time.perf_counter(), 0, 0
    clips = [(split, path) for split, paths in builder.clips().items() for path in paths]
    for split, path in tqdm(clips, desc="clips", unit="clip", disable=not progress, file=sys.stderr):
        if builder.cached(split, path).is_file():
            kept += 1
        elif builder.example(split, path) is not None:
            made += 1
    if made + kept == 0:
        raise WanjaxError(f"no clip of {clips_dir} could be read ({', '.join(skipped)}); see the lines above")
    builder.download_and_prepare()
    return {
        "clips": len(clips),
        "made": made,
        "kept": kept,
        "skipped": {k: v.split(": ", 1)[1] for k, v in skipped.items()},
        "seconds": math.ceil(time.perf_counter() - t0),
        "data_dir": str(d.data_dir),
        "config": builder.builder_config.name,
    }
