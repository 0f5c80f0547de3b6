"""The warp guide of every clip of a built brush set, computed once and stored beside it (`data.cache_guide`).

    table = guide_table(cfg, "train")      # float16 [N, F-1, h, w, C], memory-mapped; built on first use
    batch = with_guide(table, transform, batch, rng)   # the input pipeline's transform, plus batch["guide"]

A model with `model.residual=warp` adds frame 0 warped along the brush tracks (`wanjax.model.guide`) to its head.
For a built procedural set the tracks come from each clip's brushes (`compile_brushes`: no randomness), so the guide
is a function of the clip alone: computing it in every train step redoes, every epoch, the work of the step's
largest part. Here it is computed once per clip, in order, in chunks, and stored as float16 (rounding: <= 2^-11 of
a value; the step adds it in float32) under data_dir/guides/, written atomically. The file's name holds what the
guide depends on: the set's config, the split, the model's guide settings, train.max_tracks and a digest of the
code that computes it, so a change to any of them builds a new one. The train step puts frame 0 in front and drops
the guide with the brushes (`wanjax.train.step.batch_guide`). Sampling computes the guide in the model as before.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import Config
from wanjax.data.batches import decode
from wanjax.data.tfds import get_builder, set_options, sprites_config
from wanjax.model.guide import warp_guide
from wanjax.model.pixel import make_vae
from wanjax.parallel.distributed import barrier
from wanjax.train.step import batch_motion, brush_motion

CHUNK = 32  # clips per guide computation
# The code a guide depends on: brushes -> tracks -> motion input -> warp (a change to it builds a new table).
SOURCES = ("motion", "model/guide.py", "model/motion.py", "model/pixel.py")


def clip_guides(cfg: Config, video: np.ndarray, brushes: list[str]) -> np.ndarray:
    """Clips video float32 [B, T, H, W, 3] in [-1, 1] and their brush files -> their warp guides' frames 1 …,
    float16 [B, F-1, h, w, C] (frame 0 is the clean latent frame 0 itself), as the model computes them."""
    latents = make_vae(cfg.vae, nnx.Rngs(0)).encode(jnp.asarray(video))
    motion = batch_motion(brush_motion(cfg, {"video": video, "brushes": brushes}))
    motion = jax.tree.map(jnp.asarray, motion)
    return np.asarray(_warp(cfg.model.guide_pixel_size, cfg.model.motion_subframes)(latents[:, 0], motion, latents))


@functools.cache
def _warp(pixel_size: int, subframes: int) -> Callable:
    def run(first, motion, latents):
        return warp_guide(first, motion, pixel_size, subframes, latents.shape[1])[:, 1:].astype(jnp.float16)

    return jax.jit(run)


def table_path(cfg: Config, split: str) -> Path:
    """Where `guide_table` stores split's guides: data_dir/guides/<set>-<config>-<split>-<digest>.npy."""
    d, m = cfg.data, cfg.model
    digest = hashlib.sha256(
        repr((m.guide_pixel_size, m.motion_subframes, cfg.vae, cfg.train.max_tracks)).encode() + _code()
    ).hexdigest()[:16]
    return Path(d.data_dir) / "guides" / f"{d.name}-{sprites_config(**set_options(d)).name}-{split}-{digest}.npy"


def guide_table(cfg: Config, split: str) -> np.ndarray:
    """split's guides, float16 [N, F-1, h, w, C] (row i: clip i), memory-mapped; process 0 builds the file when it
    is missing (the data set must be built), every process then opens it (data_dir shared on a pod)."""
    path = table_path(cfg, split)
    if jax.process_index() == 0 and not path.exists():
        _build(cfg, split, path)
    barrier(f"guides of {split} built")
    return np.load(path, mmap_mode="r")


def _build(cfg: Config, split: str, path: Path) -> None:
    source = get_builder(cfg.data.name, cfg.data.data_dir, **set_options(cfg.data)).as_data_source(split)
    n = len(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    table = None
    for start in range(0, n, CHUNK):
        rows = [decode(source[i]) for i in range(start, min(n, start + CHUNK))]
        rows += rows[-1:] * (CHUNK - len(rows))  # a full chunk: one compiled shape
        guides = clip_guides(cfg, np.stack([r["video"] for r in rows]), [r["brushes"] for r in rows])
        if table is None:
            table = np.lib.format.open_memmap(part, "w+", np.float16, (n, *guides.shape[1:]))
        table[start : start + CHUNK] = guides[: n - start]
    table.flush()
    del table
    os.replace(part, path)  # atomic: a run killed while building leaves no half table under the real name


def with_guide(table: np.ndarray, transform: Callable[[dict, np.random.Generator], dict], batch: dict, rng):
    """The input pipeline's transform of a batch, plus "guide": its clips' rows of `table`, float32 [B, F-1, h, w,
    C] (converted here, in the pipeline's threads: the step reads them as they are)."""
    return transform(batch, rng) | {"guide": table[np.asarray(batch["index"])].astype(np.float32)}


@functools.cache
def _code() -> bytes:
    root = Path(__file__).parents[1]
    files = sorted(p for s in SOURCES for p in ((root / s).rglob("*.py") if (root / s).is_dir() else [root / s]))
    return b"".join(p.read_bytes() for p in files)
