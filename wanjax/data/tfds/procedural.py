"""TFDS builders (array_record, no TensorFlow) for the procedural sets: BrushSprites and Sprites60.

Clip i of a split is `brush_sprites(seed)` / `sprites60(seed)` with seed = `clip_seed(config.seed, split, i)`,
stored beside it, so any stored clip can be regenerated. Per-sprite arrays are padded to a fixed sprite count
(`valid` marks the real ones) so examples batch; `kind` and `shape` index KINDS and `sprites.SHAPES` (-1 = padding).
"""

import dataclasses
import json

import numpy as np
import tensorflow_datasets as tfds

from wanjax.config import check_frame_count
from wanjax.data.sprites import SHAPES, brush_sprites, sprites60
from wanjax.data.tfds.base import Builder, tensor

SPLITS = ("train", "eval")


@dataclasses.dataclass
class SpritesConfig(tfds.core.BuilderConfig):
    """Clip size and count; the name (and so the folder under data_dir) encodes them all: see `sprites_config`."""

    frames: int = 17
    height: int = 64
    width: int = 64
    train_clips: int = 2000
    eval_clips: int = 200
    seed: int = 0


def sprites_config(
    frames: int, height: int, width: int, train_clips: int, eval_clips: int, seed: int = 0
) -> SpritesConfig:
    check_frame_count(frames, "data.frames")
    sizes = dict(frames=frames, height=height, width=width, train_clips=train_clips, eval_clips=eval_clips, seed=seed)
    return SpritesConfig(name=f"t{frames}_{height}x{width}_n{train_clips}-{eval_clips}_s{seed}", **sizes)


def clip_seed(seed: int, split: str, index: int) -> int:
    """Generator seed of clip `index` of `split`: independent random streams per (dataset seed, split, index)."""
    return int(np.random.SeedSequence([seed, SPLITS.index(split), index]).generate_state(1)[0])


class _Sprites(Builder, skip_registration=True):
    """What both sets share: splits of seeded clips, per-sprite arrays padded to MAX_SPRITES rows."""

    MAX_SPRITES: int
    KINDS: tuple[str, ...]

    @staticmethod
    def generate(seed: int, frames: int, height: int, width: int) -> dict:
        """The generator's clip for `seed` (`wanjax.data.sprites`)."""
        raise NotImplementedError

    @classmethod
    def example(cls, seed: int, frames: int, height: int, width: int) -> dict:
        """The stored example of clip `seed`: what the builder writes and `wanjax.data.stream` yields."""
        return cls._example(cls.generate(seed, frames, height, width), seed)

    def _features(self) -> dict:
        c, s = self.builder_config, self.MAX_SPRITES
        return {
            "video": tensor((c.frames, c.height, c.width, 3), np.uint8, zlib=True),
            "tracks": tensor((s, c.frames, 2), np.float32),
            "visible": tensor((s, c.frames), np.bool_),
            "valid": tensor((s,), np.bool_),
            "kind": tensor((s,), np.int32),
            "shape": tensor((s,), np.int32),
            "colors": tensor((s, 3), np.uint8),
            "radii": tensor((s,), np.float32),
            "seed": tfds.features.Scalar(np.int64),
        }

    @classmethod
    def _example(cls, clip: dict, seed: int) -> dict:
        n, pad = len(clip["kinds"]), cls.MAX_SPRITES - len(clip["kinds"])

        def rows(x, fill=0):
            return np.concatenate([x, np.full((pad, *x.shape[1:]), fill, x.dtype)])

        return {
            "video": clip["video"],
            "tracks": rows(clip["tracks"]),
            "visible": rows(clip["visible"]),
            "valid": rows(np.ones(n, bool)),
            "kind": rows(np.array([cls.KINDS.index(k) for k in clip["kinds"]], np.int32), -1),
            "shape": rows(np.array([SHAPES.index(k) for k in clip["shapes"]], np.int32), -1),
            "colors": rows(clip["colors"]),
            "radii": rows(clip["radii"]),
            "seed": seed,
        }

    def _split_generators(self, dl_manager):
        counts = {"train": self.builder_config.train_clips, "eval": self.builder_config.eval_clips}
        return {split: self._generate_examples(split, n) for split, n in counts.items()}

    def _generate_examples(self, split: str, count: int):
        c = self.builder_config
        for i in range(count):
            yield i, self.example(clip_seed(c.seed, split, i), c.frames, c.height, c.width)


class BrushSprites(_Sprites):
    """BrushSprites: 1-3 sprites moved by motion brushes (path, sway, static), streams and camera pans; `brushes` is
    the clip's brush file (JSON, version 1) and `tracks` the sprites' ground-truth centres."""

    name = "brushsprites"
    MAX_SPRITES = 3
    KINDS = ("path", "sway", "static")
    BUILDER_CONFIGS = [sprites_config(17, 64, 64, 2000, 200)]

    generate = staticmethod(brush_sprites)

    def _features(self) -> dict:
        return super()._features() | {"brushes": tfds.features.Text()}

    @classmethod
    def _example(cls, clip: dict, seed: int) -> dict:
        return super()._example(clip, seed) | {"brushes": json.dumps(clip["brushes"])}


class Sprites60(_Sprites):
    """Sprites60: long clips (60 s at 16 fps by default) of 2-4 sprites that bounce, orbit, and leave and return."""

    name = "sprites60"
    MAX_SPRITES = 4
    KINDS = ("bounce", "orbit", "leave")
    BUILDER_CONFIGS = [sprites_config(961, 32, 32, 500, 50)]

    generate = staticmethod(sprites60)
