"""Sample files: mp4 (H.264, yuv420p), gif, png (first frame), npz (frames, latents), json (metadata).

Every file is written under a temporary name in the same folder and renamed into place, so a reader never
sees a half file under the final name. gs://BUCKET/PREFIX destinations go through `wanjax.io.gcs`, where an
object appears only once its upload is complete and verified.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from wanjax.errors import WanjaxError


def to_uint8(video: np.ndarray) -> np.ndarray:
    """[..., 3] floats in [-1, 1] -> uint8 [0, 255]."""
    return np.clip(np.round((np.asarray(video, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def atomic_write(path: Path, write) -> Path:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # same suffix: imageio picks the format by it
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj) -> Path:
    """`obj` as indented JSON at `path` (folders made, written atomically): benchmark and evaluation results."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=1) + "\n"))


def write_video(path: Path, frames: np.ndarray, fps: int) -> Path:
    """frames uint8 [T, H, W, 3] -> .mp4 (libx264, yuv420p) or .gif."""
    import imageio.v2 as imageio

    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise WanjaxError(f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if path.suffix == ".mp4":
        # yuv420p needs even sizes; macro_block_size=2 pads odd ones by a pixel instead of to 16.
        options = {"fps": fps, "codec": "libx264", "pixelformat": "yuv420p", "macro_block_size": 2}
        return atomic_write(path, lambda p: imageio.mimwrite(p, list(frames), **options))
    if path.suffix == ".gif":
        return atomic_write(path, lambda p: imageio.mimwrite(p, list(frames), duration=1000 / fps, loop=0))
    raise WanjaxError(f"{path}: unknown video format {path.suffix!r}; use .mp4 or .gif")


def write_sample(
    out_dir: str | Path, frames: np.ndarray, *, fps: int, meta: dict, latents: np.ndarray | None = None,
    name: str = "sample", extras: dict[str, np.ndarray] | None = None,
) -> dict[str, Path | str]:  # fmt: skip
    """Write NAME.{mp4,gif,png,npz,json} to `out_dir` (a folder or gs://BUCKET/PREFIX). frames uint8 [T, H, W, 3];
    latents [F, h, w, C]; extras: more pictures as {"overlay.png": uint8 [H, W, 3], "overlay.mp4": [T, H, W, 3],
    ...} written as NAME_overlay.png etc. Returns the written paths (gs:// URLs for a bucket)."""
    import imageio.v2 as imageio

    if str(out_dir).startswith("gs://"):  # before Path(), which would fold "gs://" into "gs:/"
        with tempfile.TemporaryDirectory(prefix="wanjax-sample-") as tmp:
            local = write_sample(tmp, frames, fps=fps, meta=meta, latents=latents, name=name, extras=extras)
            urls = export(tmp, str(out_dir))
        by_name = {url.rsplit("/", 1)[1]: url for url in urls}
        return {kind: by_name[path.name] for kind, path in local.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"frames": frames} if latents is None else {"frames": frames, "latents": np.asarray(latents)}
    paths = {
        "mp4": write_video(out / f"{name}.mp4", frames, fps),
        "gif": write_video(out / f"{name}.gif", frames, fps),
        "png": atomic_write(out / f"{name}.png", lambda p: imageio.imwrite(p, frames[0])),
        "npz": atomic_write(out / f"{name}.npz", lambda p: np.savez_compressed(p, **arrays)),
        "json": atomic_write(out / f"{name}.json", lambda p: p.write_text(json.dumps(meta, indent=2, default=str))),
    }
    for key, picture in (extras or {}).items():
        path = out / f"{name}_{key}"
        if path.suffix == ".png":
            paths[key] = atomic_write(path, lambda p, x=picture: imageio.imwrite(p, x))
        else:
            paths[key] = write_video(path, picture, fps)
    return paths


def export(src: str | Path, dst: str) -> list[str]:
    """Copy a sample folder to a local folder or gs://BUCKET/PREFIX (files land whole, one by one).

    Returns the written paths (gs:// URLs for a bucket)."""
    src = Path(src)
    if not src.is_dir():
        raise WanjaxError(f"{src} is not a sample folder (expected the --out folder of `wanjax sample`)")
    files = sorted(f for f in src.iterdir() if f.is_file())
    if str(dst).startswith("gs://"):
        from wanjax.io.gcs import upload_files

        return upload_files(files, str(dst))
    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    return [str(atomic_write(out / f.name, lambda p, f=f: shutil.copyfile(f, p))) for f in files]
