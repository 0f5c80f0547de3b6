"""Procedural clips generated on the fly through Grain (`data.stream`): training never sees a clip twice.

    it = stream_dataset("brushsprites", "train", batch_size=32, frames=17, height=64, width=64, workers=8)
    batch = next(it)   # the same keys and dtypes as `pipeline.make_dataset` over the built set

Clip i of a split is the TFDS builder's clip i (`clip_seed(seed, split, i)`), so the stream is the built set
continued without end: the train split counts up forever, the eval split is its first `eval_clips` clips, in order,
once. Each process takes its rows of every global batch (`batches.process_batches`). The train stream is generated
in `workers` Grain worker processes (0: in the caller's threads); the iterator's position checkpoints like any Grain
iterator. Grain joins each worker for up to 25 s when the iterator closes, so a process that ends training waits
for them.
"""

from collections.abc import Callable

import grain

from wanjax.data.batches import decode, process_batches, with_index
from wanjax.data.tfds.procedural import BrushSprites, Sprites60, clip_seed
from wanjax.errors import WanjaxError

SETS = {"brushsprites": BrushSprites, "sprites60": Sprites60}
ENDLESS = 2**62  # clip indices of the train stream: more than any run reads


class _Clip:
    """Index -> decoded example (picklable, for Grain's worker processes)."""

    def __init__(self, name: str, split: str, seed: int, frames: int, height: int, width: int):
        self.builder, self.split, self.seed, self.size = SETS[name], split, seed, (frames, height, width)

    def __call__(self, index: int) -> dict:
        example = decode(self.builder.example(clip_seed(self.seed, self.split, index), *self.size))
        return with_index(ENDLESS, index, example)


def stream_dataset(
    name: str,
    split: str,
    batch_size: int,
    *,
    frames: int,
    height: int,
    width: int,
    eval_clips: int = 200,
    seed: int = 0,
    workers: int = 0,
    prefetch: int = 2,
    transform: Callable[[dict], dict] | None = None,
    share: tuple[int, int] | None = None,
) -> grain.DatasetIterator:
    """Batches of freshly generated clips of procedural set `name` (brushsprites | sprites60); batch_size is global
    (see module doc; share as `process_batches`). The last partial eval batch is dropped. transform: applied to each
    batch where it is made."""
    if name not in SETS:
        raise WanjaxError(f"data.stream needs a procedural set ({', '.join(SETS)}), not data.name={name!r}")
    stop = ENDLESS if split == "train" else eval_clips
    if stop < batch_size:
        raise WanjaxError(
            f"the {split} stream of {name} has {stop} clips, fewer than one batch of {batch_size}; "
            f"use a smaller batch_size or more data.eval_clips"
        )
    ds = grain.MapDataset.range(stop).map(_Clip(name, split, seed, frames, height, width))
    ds = process_batches(ds, batch_size, share)
    if transform is not None:
        ds = ds.map(transform)
    # Grain's default read-ahead is 500 batches: 11 GB per worker for Sprites60's 60-s clips (OOM-killed on 24 GB).
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch))
    if workers and split == "train":  # the eval stream is read once: worker start-up and shutdown would cost more
        from absl import flags

        if not flags.FLAGS.is_parsed():  # Grain's worker processes read absl flags; wanjax has none of its own
            flags.FLAGS.mark_as_parsed()
        return iter(ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers)))
    return iter(ds)
