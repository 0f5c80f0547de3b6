"""TFDS builder over a folder of real clips that stores their latents and text embeddings, computed once.

Layout: `clips_dir/*.mp4`, each with its caption beside it (`clip.mp4` + `clip.txt`), all in one "train" split; or
one sub-folder per split (`clips_dir/train/*.mp4`, `clips_dir/eval/*.mp4`). The encoders are passed in (built from
the VAE and text encoder by the caller), so this module depends on neither, and TPU training jobs read only the
stored arrays: `latents` (whatever `encode_video` returns, e.g. [F, h, w, 16]) and `context` [M, D].
"""

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tensorflow_datasets as tfds

from wanjax.config import check_frame_count
from wanjax.data.tfds.base import Builder, tensor
from wanjax.errors import WanjaxError


def read_frames(path: str | Path, frames: int) -> np.ndarray:
    """The first `frames` frames of a video file -> uint8 [T, H, W, 3]."""
    video = np.stack([f[..., :3] for f in itertools.islice(iio.imiter(path), frames)])
    if len(video) < frames:
        raise WanjaxError(f"{path}: has {len(video)} frames, data.frames={frames} needs at least that many")
    return video


@dataclasses.dataclass
class VideoLatentsConfig(tfds.core.BuilderConfig):
    frames: int = 81  # read from the start of each clip; 4k+1


def video_latents_config(frames: int) -> VideoLatentsConfig:
    check_frame_count(frames, "data.frames")
    return VideoLatentsConfig(name=f"t{frames}", frames=frames)


class VideoLatents(Builder):
    """Real clips as cached latents (`latents`, float32), text embeddings (`context` [M, D], float32), `caption`
    and the `clip` file name."""

    name = "video_latents"
    BUILDER_CONFIGS = [VideoLatentsConfig(name="t81", frames=81)]

    def __init__(
        self,
        *,
        clips_dir: str | Path | None = None,
        encode_video: Callable[[np.ndarray], np.ndarray] | None = None,
        encode_text: Callable[[str], np.ndarray] | None = None,
        **kwargs,
    ):
        """clips_dir and the encoders are needed to build (`download_and_prepare`), not to read.
        encode_video: uint8 [T, H, W, 3] -> latents; encode_text: caption -> [M, D]."""
        self._clips_dir, self._encode_video, self._encode_text = clips_dir, encode_video, encode_text
        super().__init__(**kwargs)

    def _features(self) -> dict:
        return {
            "latents": tensor((None, None, None, None), np.float32, zlib=True),
            "context": tensor((None, None), np.float32, zlib=True),
            "caption": tfds.features.Text(),
            "clip": tfds.features.Text(),
        }

    def _split_generators(self, dl_manager):
        if self._clips_dir is None or self._encode_video is None or self._encode_text is None:
            raise WanjaxError(
                f"video_latents in {self.data_dir} is not built; building needs clips_dir, encode_video and "
                "encode_text (wanjax.data.pipeline.build('video_latents', data_dir, clips_dir=..., ...))"
            )
        root = Path(self._clips_dir)
        folders = {d.name: d for d in sorted(root.glob("*")) if d.is_dir() and any(d.glob("*.mp4"))}
        if not folders and not any(root.glob("*.mp4")):
            raise WanjaxError(f"clips_dir={str(root)!r} has no .mp4 files (nor sub-folders of them, one per split)")
        return {split: self._generate_examples(folder) for split, folder in (folders or {"train": root}).items()}

    def _generate_examples(self, folder: Path):
        for path in sorted(folder.glob("*.mp4")):
            caption_file = path.with_suffix(".txt")
            if not caption_file.exists():
                raise WanjaxError(f"{path}: no caption file {caption_file.name} beside it")
            caption = caption_file.read_text().strip()
            latents = np.asarray(self._encode_video(read_frames(path, self.builder_config.frames)), np.float32)
            context = np.asarray(self._encode_text(caption), np.float32)
            yield path.name, {"latents": latents, "context": context, "caption": caption, "clip": path.name}
