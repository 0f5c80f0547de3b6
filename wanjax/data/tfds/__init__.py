"""TFDS builders (array_record, readable without TensorFlow) for wanjax's data sets, by `data.name`."""

from pathlib import Path

import tensorflow_datasets as tfds

from wanjax.config import DataConfig
from wanjax.data.tfds.procedural import BrushSprites, Sprites60, sprites_config
from wanjax.data.tfds.video_latents import VideoLatents, video_latents_config
from wanjax.errors import WanjaxError

NAMES = ("brushsprites", "sprites60", "video_latents")


def set_options(d: DataConfig) -> dict:
    """A procedural set's `get_builder` options from the data settings."""
    return dict(frames=d.frames, height=d.height, width=d.width, train_clips=d.train_clips, eval_clips=d.eval_clips)


def get_builder(
    name: str,
    data_dir: str | Path,
    *,
    frames: int = 17,
    height: int = 64,
    width: int = 64,
    train_clips: int = 2000,
    eval_clips: int = 200,
    seed: int = 0,
    **builder_kwargs,
) -> tfds.core.DatasetBuilder:
    """The builder of data set `name` under data_dir. Procedural sets: clip size, count and generator seed pick the
    config (one folder each); video_latents: `frames` and `points` (tracks per clip) only, and builder_kwargs
    clips_dir, encode_video, encode_text (track, cache_dir, report) to build it (see `VideoLatents`)."""
    if name == "video_latents":
        cls, config = VideoLatents, video_latents_config(frames, builder_kwargs.pop("points", 1024))
    else:
        procedural = {"brushsprites": BrushSprites, "sprites60": Sprites60}
        if name not in procedural:
            raise WanjaxError(f"data.name={name!r} is not one of {', '.join(NAMES)}")
        cls, config = procedural[name], sprites_config(frames, height, width, train_clips, eval_clips, seed)
    # TFDS refuses a config object named like one of the class's own: pass that one by name.
    if any(c.name == config.name for c in cls.BUILDER_CONFIGS):
        config = config.name
    return cls(data_dir=data_dir, config=config, **builder_kwargs)


__all__ = ["NAMES", "BrushSprites", "Sprites60", "VideoLatents", "get_builder"]
