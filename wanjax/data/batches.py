"""From stored or generated examples to this process's batches: decode, then each process's rows of a global batch.

Shared by `wanjax.data.pipeline` (built TFDS sets) and `wanjax.data.stream` (procedural clips on the fly).
"""

import grain
import jax
import numpy as np

from wanjax.errors import WanjaxError


def decode(example: dict) -> dict:
    """Stored example -> model input: uint8 `video` -> float32 in [-1, 1]; text (bytes) -> str; the rest as stored."""
    out = {}
    for key, value in example.items():
        if isinstance(value, bytes):
            out[key] = value.decode()
        elif key == "video":
            out[key] = value.astype(np.float32) / 127.5 - 1.0
        else:
            out[key] = value
    return out


def with_index(size: int, index: int, example: dict) -> dict:
    """The example with "index": its index in its split of `size` clips (what data stored per clip, e.g.
    `wanjax.train.guides`, is looked up by). Read again in later epochs, an example's index is index % size."""
    return example | {"index": np.int64(index % size)}


def process_batches(ds: grain.MapDataset, batch_size: int, share: tuple[int, int] | None = None) -> grain.MapDataset:
    """This process's share of each global batch of ds: global batch k is elements kB … kB+B-1 (B = batch_size) and
    share (i, n) gets its rows i·B/n … (i+1)·B/n - 1 (default: (process index, process count); processes that hold
    the same rows share an index: `wanjax.parallel.distributed.row_share`). The batches are the same for any process
    count, so a run resumes on another number of hosts; a finite ds loses its last partial global batch."""
    index, count = share or (jax.process_index(), jax.process_count())
    if batch_size % count:
        raise WanjaxError(f"batch_size={batch_size} is not a multiple of the {count} processes' shares of a batch")
    return ds[: len(ds) // batch_size * batch_size].batch(batch_size // count)[index::count]
