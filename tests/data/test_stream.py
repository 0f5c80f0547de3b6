"""data.stream: the built set continued without end, in order, sharded, resumable, from worker processes too."""

import numpy as np
import pytest

from wanjax.config import config_from_dict
from wanjax.data import pipeline
from wanjax.data.stream import stream_dataset
from wanjax.errors import WanjaxError

BRUSH = dict(frames=5, height=32, width=32, train_clips=6, eval_clips=4)
SIZE = dict(frames=5, height=32, width=32)


def _same(want: dict, got: dict) -> None:
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_array_equal(want[key], got[key], err_msg=key)


def _clips(batches) -> dict[int, dict]:
    """Clips by seed, without "index" (the index in the stream; a built set, stored in TFDS's order, has its own)."""
    return {int(s): {k: v[j] for k, v in b.items() if k != "index"} for b in batches for j, s in enumerate(b["seed"])}


def test_stream_continues_the_built_set(tmp_path):
    """The stream's first 6 train clips are the built set's 6 (TFDS stores them in its own order), decoded alike,
    then new ones; the eval stream is the built eval split."""
    builder = pipeline.build("brushsprites", tmp_path, **BRUSH)
    it = stream_dataset("brushsprites", "train", 2, **SIZE)
    stream = [next(it) for _ in range(5)]
    streamed = _clips(stream[:3])
    built = {int(ex["seed"]): pipeline.decode(ex) for ex in builder.as_data_source("train")}
    assert streamed.keys() == built.keys()
    for seed in built:
        _same(built[seed], streamed[seed])
    assert len(_clips(stream)) == 10  # never a clip twice (the built set of 6 would have repeated)
    assert [int(i) for b in stream for i in b["index"]] == list(range(10))
    eval_stream = list(stream_dataset("brushsprites", "eval", 2, eval_clips=4, **SIZE))
    eval_built = {int(ex["seed"]): pipeline.decode(ex) for ex in builder.as_data_source("eval")}
    assert len(eval_stream) == 2 and _clips(eval_stream).keys() == eval_built.keys()
    for seed, clip in _clips(eval_stream).items():
        _same(eval_built[seed], clip)


def test_workers_resume_and_shards(monkeypatch):
    """Worker processes yield the in-process stream; a saved position resumes exactly; processes split the clips."""
    plain = stream_dataset("brushsprites", "train", 2, **SIZE)
    want = [next(plain) for _ in range(4)]
    it = stream_dataset("brushsprites", "train", 2, workers=2, **SIZE)
    got = [next(it) for _ in range(2)]
    state = it.get_state()
    fresh = stream_dataset("brushsprites", "train", 2, workers=2, **SIZE)
    fresh.set_state(state)
    got += [next(fresh) for _ in range(2)]
    for w, g in zip(want, got, strict=True):
        _same(w, g)
    import jax

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    second = next(stream_dataset("brushsprites", "train", 4, **SIZE))
    np.testing.assert_array_equal(second["seed"], want[1]["seed"])  # clips 2 and 3: the second half of batch 0


def test_stream_config_and_errors():
    cfg = config_from_dict({"data": {**BRUSH, "stream": True}, "train": {"batch_size": 2}})
    assert next(pipeline.config_batches(cfg, "train"))["video"].shape == (2, 5, 32, 32, 3)
    with pytest.raises(WanjaxError, match="data.stream needs a procedural set"):
        stream_dataset("video_latents", "train", 2, **SIZE)
    with pytest.raises(WanjaxError, match="fewer than one batch"):
        stream_dataset("brushsprites", "eval", 8, eval_clips=4, **SIZE)
    with pytest.raises(WanjaxError, match="data.stream=true generates"):
        config_from_dict({"data": {"name": "video_latents", "stream": True}})
    with pytest.raises(WanjaxError, match="data.workers=-1"):
        config_from_dict({"data": {"workers": -1}})


def _count_batch(path, batch: dict) -> dict:
    with open(path, "a") as f:
        f.write("batch\n")
    return batch


def test_worker_read_ahead_is_bounded(tmp_path):
    """A worker makes a few batches ahead, not Grain's default 500 (11 GB per worker for Sprites60's 60-s clips)."""
    import functools
    import time

    made = tmp_path / "made.txt"
    it = stream_dataset("brushsprites", "train", 2, workers=1, transform=functools.partial(_count_batch, made), **SIZE)
    next(it)
    time.sleep(3.0)  # a worker reading ahead without bound makes hundreds of these tiny batches in that time
    assert 1 <= len(made.read_text().splitlines()) <= 8
