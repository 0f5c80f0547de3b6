"""Grain input pipelines over the TFDS builders: shuffle, decode, repeat, batch, share out by process, prefetch.

    build("brushsprites", "data", frames=17, train_clips=2000)             # once; a no-op when already built
    it = make_dataset("brushsprites", "train", "data", batch_size=8, seed=0, frames=17, train_clips=2000)
    batch = next(it)   # {"video": float32 [B, T, H, W, 3] in [-1, 1], "tracks": [B, S, T, 2], "brushes": str [B],
                       #  "index": int64 [B] (each clip's index in the split), ...}
    state = it.get_state()   # ... later, in a fresh process: it.set_state(state) resumes exactly

The iterator is a `grain.DatasetIterator`, so `grain.checkpoint.CheckpointSave(it)` stores its position with Orbax
(wanjax.train.checkpoint).
"""

import functools
from collections.abc import Callable
from pathlib import Path

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

from wanjax.config import Config
from wanjax.data.batches import decode, process_batches, with_index
from wanjax.data.tfds import get_builder, set_options
from wanjax.errors import WanjaxError
from wanjax.parallel.distributed import barrier


def build(name: str, data_dir: str | Path, **options) -> tfds.core.DatasetBuilder:
    """Build data set `name` into data_dir unless it is there already; options as `wanjax.data.tfds.get_builder`."""
    builder = get_builder(name, data_dir, **options)
    builder.download_and_prepare()
    return builder


def make_dataset(
    name: str,
    split: str,
    data_dir: str | Path,
    batch_size: int,
    seed: int = 0,
    *,
    train: bool | None = None,
    prefetch: int = 2,
    transform: Callable[[dict, np.random.Generator], dict] | None = None,
    share: tuple[int, int] | None = None,
    **options,
) -> grain.DatasetIterator:
    """Batches of `split` of a built data set (options as `get_builder`, matching the build).

    batch_size is global: each process yields its rows of every global batch (`process_batches`, share). train (default:
    split == "train") shuffles with `seed`, differently each epoch, and repeats forever; otherwise the split is read
    once, in order. The last partial batch is dropped. prefetch: batches read ahead, each by its own thread (0 =
    read in the caller's thread). transform(batch, rng): applied to each batch by those threads, rng a numpy
    Generator drawn from `seed` and the batch's position."""
    builder = get_builder(name, data_dir, **options)
    if not builder.is_prepared():
        raise WanjaxError(
            f"{name} ({builder.builder_config.name}) is not built in data_dir={str(data_dir)!r}; "
            f"run wanjax.data.pipeline.build({name!r}, {str(data_dir)!r}, ...) with the same options first"
        )
    source = builder.as_data_source(split)
    ds = grain.MapDataset.source(source).map_with_index(functools.partial(with_index, len(source)))
    if len(ds) < batch_size:
        raise WanjaxError(
            f"split {split!r} of {name} has {len(ds)} clips, fewer than one batch of {batch_size}; "
            f"use a smaller batch_size or more clips"
        )
    if split == "train" if train is None else train:
        ds = ds.shuffle(seed).repeat()  # shuffle first: each epoch is a fresh permutation, epochs never mix
    ds = process_batches(ds.map(decode), batch_size, share)
    if transform is not None:  # with a generator of its own per batch (from seed and position): resumes exactly
        ds = ds.random_map(transform, seed=seed)
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch)))


def config_batches(cfg: Config, split: str, share: tuple[int, int] | None = None) -> grain.DatasetIterator:
    """The training loop's data: `cfg.data`'s set in batches of train.batch_size shuffled with train.seed, this
    process's `share` of each (`process_batches`). A procedural set is built on first use (by process 0; with
    several processes data_dir must be shared), or with data.stream generated on the fly (`wanjax.data.stream`).
    With data.cache_guide (`Config.stores_guides`) each batch also carries its clips' warp guides ("guide",
    `wanjax.train.guides`), built on first use."""
    d = cfg.data
    transform = None
    if cfg.model.motion != "none":
        from wanjax.train.step import brush_motion

        transform = functools.partial(brush_motion, cfg)  # brushes -> tracks in the pipeline's threads / workers
    if d.stream:
        from wanjax.data.stream import stream_dataset

        size = dict(frames=d.frames, height=d.height, width=d.width, eval_clips=d.eval_clips)
        return stream_dataset(
            d.name, split, cfg.train.batch_size, workers=d.workers, transform=transform, share=share, **size
        )
    if d.name == "video_latents":  # built beforehand from real clips: building needs the encoders
        options = {"frames": d.frames, "points": d.track_points}
    else:
        options = set_options(d)
        if jax.process_index() == 0:
            build(d.name, d.data_dir, **options)
    barrier(f"data {d.name} built")  # process 0 may take minutes
    if cfg.stores_guides:  # each clip's warp guide, computed once (wanjax.train.guides)
        from wanjax.train.guides import guide_table, with_guide

        transform = functools.partial(with_guide, guide_table(cfg, split), transform)
    args = (d.name, split, d.data_dir, cfg.train.batch_size, cfg.train.seed)
    return make_dataset(*args, transform=transform, share=share, **options)
