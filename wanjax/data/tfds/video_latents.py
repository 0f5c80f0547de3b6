"""TFDS builder over a folder of real clips that stores their latents, text embeddings and point tracks, computed once.

Layout: `clips_dir/*.mp4`, each with its caption beside it (`clip.mp4` + `clip.txt`), all in one "train" split; or
one sub-folder per split (`clips_dir/train/*.mp4`, `clips_dir/eval/*.mp4`). The encoders are passed in (built from
the VAE and text encoder by the caller, e.g. `wanjax.data.build`), so this module depends on neither, and TPU
training jobs read only the stored arrays: `latents` (whatever `encode_video` returns, e.g. [F, h, w, 16]),
`context` [M, D] and the clip's point tracks (`wanjax.motion.tracking`), padded to P rows: `tracks_xy` [P, T, 2],
`tracks_visible` [P, T], `tracks_valid` [P].

With a `cache_dir`, each clip's example is kept there (one .npz per clip, written atomically) as soon as it is
made, and found there next time: a build that was stopped resumes without encoding finished clips again. A clip
that cannot be read is reported (`report`) by name and left out.
"""

import dataclasses
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tensorflow_datasets as tfds

from wanjax.config import check_frame_count
from wanjax.data.tfds.base import Builder, tensor
from wanjax.errors import WanjaxError
from wanjax.motion.tracks import Tracks


def read_frames(path: str | Path, frames: int) -> np.ndarray:
    """The first `frames` frames of a video file -> uint8 [T, H, W, 3]."""
    try:
        video = [f[..., :3] for f in itertools.islice(iio.imiter(path), frames)]
    except Exception as e:  # imageio / ffmpeg raise many types for a damaged file
        raise WanjaxError(f"{path}: cannot decode it ({type(e).__name__}); re-encode or remove the clip") from None
    if len(video) < frames:
        raise WanjaxError(f"{path}: has {len(video)} frames, data.frames={frames} needs at least that many")
    return np.stack(video)


@dataclasses.dataclass
class VideoLatentsConfig(tfds.core.BuilderConfig):
    frames: int = 81  # read from the start of each clip; 4k+1
    points: int = 1024  # point tracks stored per clip (padded)


def video_latents_config(frames: int, points: int = 1024) -> VideoLatentsConfig:
    check_frame_count(frames, "data.frames")
    return VideoLatentsConfig(name=f"t{frames}_p{points}", frames=frames, points=points)


def _default_track(points: int) -> Callable[[np.ndarray], Tracks]:
    """A grid of 3/4 of the rows in frame 0, the rest re-seeded (wanjax.motion.tracking.track_video)."""
    from wanjax.motion.tracking import track_video

    return lambda video: track_video(video, points=points - points // 4, reseed=points // 4)


class VideoLatents(Builder):
    """Real clips as cached latents (`latents`, float32), text embeddings (`context` [M, D], float32), point tracks
    (`tracks_xy`, `tracks_visible`, `tracks_valid`), `caption` and the `clip` file name."""

    name = "video_latents"
    BUILDER_CONFIGS = [VideoLatentsConfig(name="t81_p1024", frames=81, points=1024)]

    def __init__(
        self,
        *,
        clips_dir: str | Path | None = None,
        encode_video: Callable[[np.ndarray], np.ndarray] | None = None,
        encode_text: Callable[[str], np.ndarray] | None = None,
        track: Callable[[np.ndarray], Tracks] | None = None,
        cache_dir: str | Path | None = None,
        report: Callable[[str], None] | None = None,
        **kwargs,
    ):
        """clips_dir and the encoders are needed to build (`download_and_prepare`), not to read.
        encode_video: uint8 [T, H, W, 3] -> latents; encode_text: caption -> [M, D]; track: uint8 [T, H, W, 3] ->
        Tracks of at most `points` rows (default: `wanjax.motion.tracking.track_video`); cache_dir: where finished
        clips are kept (None: nowhere); report: called with a line naming each clip left out (default: raise)."""
        self._clips_dir, self._encode_video, self._encode_text = clips_dir, encode_video, encode_text
        self._track, self._cache_dir, self._report = track, cache_dir, report
        super().__init__(**kwargs)

    def _features(self) -> dict:
        P, T = self.builder_config.points, self.builder_config.frames
        return {
            "latents": tensor((None, None, None, None), np.float32, zlib=True),
            "context": tensor((None, None), np.float32, zlib=True),
            "tracks_xy": tensor((P, T, 2), np.float32, zlib=True),
            "tracks_visible": tensor((P, T), np.bool_, zlib=True),
            "tracks_valid": tensor((P,), np.bool_),
            "caption": tfds.features.Text(),
            "clip": tfds.features.Text(),
        }

    def clips(self) -> dict[str, list[Path]]:
        """Split name -> its clips, sorted."""
        if self._clips_dir is None or self._encode_video is None or self._encode_text is None:
            raise WanjaxError(
                f"video_latents in {self.data_dir} is not built; building needs clips_dir, encode_video and "
                "encode_text (wanjax data build CONFIG --clips DIR, or wanjax.data.build.build_video_set)"
            )
        root = Path(self._clips_dir)
        folders = {d.name: d for d in sorted(root.glob("*")) if d.is_dir() and any(d.glob("*.mp4"))}
        if not folders and not any(root.glob("*.mp4")):
            raise WanjaxError(f"clips_dir={str(root)!r} has no .mp4 files (nor sub-folders of them, one per split)")
        return {split: sorted(folder.glob("*.mp4")) for split, folder in (folders or {"train": root}).items()}

    def cached(self, split: str, path: Path) -> Path | None:
        """Where clip `path` of `split` is kept once made (None without a cache_dir)."""
        return None if self._cache_dir is None else Path(self._cache_dir) / split / f"{path.stem}.npz"

    def example(self, split: str, path: Path) -> dict | None:
        """Clip `path`'s example: from the cache, else made (and kept there); None, reported, if it cannot be read."""
        keep = self.cached(split, path)
        if keep is not None and keep.is_file():
            with np.load(keep) as stored:
                return {k: str(stored[k]) if stored[k].dtype.kind == "U" else stored[k] for k in stored.files}
        try:
            example = self._make(path)
        except WanjaxError as e:
            if self._report is None:
                raise
            self._report(f"skipped {path.name}: {e}")
            return None
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            tmp = keep.with_name(f".tmp-{os.getpid()}-{keep.name}")
            np.savez(tmp, **example)
            os.replace(tmp, keep)
        return example

    def _make(self, path: Path) -> dict:
        caption_file = path.with_suffix(".txt")
        if not caption_file.exists():
            raise WanjaxError(f"{path}: no caption file {caption_file.name} beside it")
        caption = caption_file.read_text().strip()
        video = read_frames(path, self.builder_config.frames)
        track = self._track or _default_track(self.builder_config.points)
        tracks = track(video)
        pad = self.builder_config.points - len(tracks.valid)
        if pad < 0:
            raise WanjaxError(
                f"{path}: the tracker gave {len(tracks.valid)} tracks, more than points={pad + len(tracks.valid)}"
            )
        return {
            "latents": np.asarray(self._encode_video(video), np.float32),
            "context": np.asarray(self._encode_text(caption), np.float32),
            "tracks_xy": np.pad(tracks.xy.astype(np.float32), ((0, pad), (0, 0), (0, 0))),
            "tracks_visible": np.pad(tracks.visible, ((0, pad), (0, 0))),
            "tracks_valid": np.pad(tracks.valid, (0, pad)),
            "caption": caption,
            "clip": path.name,
        }

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split, paths) for split, paths in self.clips().items()}

    def _generate_examples(self, split: str, paths: list[Path]):
        for path in paths:
            example = self.example(split, path)
            if example is not None:
                yield path.name, example
