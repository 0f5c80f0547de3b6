"""TFDS builds read back equal to the generators; Grain batches, process sharding and exact resume."""

import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from wanjax.config import config_from_dict
from wanjax.data import pipeline
from wanjax.data.sprites import brush_sprites, sprites60
from wanjax.data.tfds import get_builder
from wanjax.data.tfds.video_latents import read_frames
from wanjax.errors import WanjaxError

BRUSH = dict(frames=5, height=32, width=32, train_clips=12, eval_clips=4)
LONG = dict(frames=33, height=16, width=16, train_clips=3, eval_clips=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfds")
    pipeline.build("brushsprites", path, **BRUSH)
    pipeline.build("sprites60", path, **LONG)
    return path


def _read_all(data_dir, name, split, options):
    source = get_builder(name, data_dir, **options).as_data_source(split)
    return [source[i] for i in range(len(source))]


def test_brushsprites_read_back_equals_generator(data_dir):
    seeds = set()
    for split, count in (("train", 12), ("eval", 4)):
        examples = _read_all(data_dir, "brushsprites", split, BRUSH)
        assert len(examples) == count
        for ex in examples:
            clip = brush_sprites(ex["seed"], frames=5, height=32, width=32)
            s = len(clip["kinds"])
            np.testing.assert_array_equal(ex["video"], clip["video"])
            np.testing.assert_array_equal(ex["tracks"][:s], clip["tracks"])
            np.testing.assert_array_equal(ex["tracks"][s:], 0)
            np.testing.assert_array_equal(ex["visible"][:s], clip["visible"])
            np.testing.assert_array_equal(ex["colors"][:s], clip["colors"])
            assert ex["valid"].tolist() == [True] * s + [False] * (3 - s)
            assert ex["kind"][s:].tolist() == [-1] * (3 - s)
            assert json.loads(ex["brushes"]) == clip["brushes"]
            seeds.add(ex["seed"])
    assert len(seeds) == 16  # every clip of both splits is its own


def test_sprites60_read_back_equals_generator(data_dir):
    for ex in _read_all(data_dir, "sprites60", "train", LONG):
        clip = sprites60(ex["seed"], frames=33, height=16, width=16)
        s = len(clip["kinds"])
        np.testing.assert_array_equal(ex["video"], clip["video"])
        np.testing.assert_array_equal(ex["tracks"][:s], clip["tracks"])
        np.testing.assert_array_equal(ex["visible"][:s], clip["visible"])
        assert ex["kind"][s - 1] == 2 and ex["valid"].sum() == s  # the last sprite is the one that leaves


def test_batches_decoded(data_dir):
    batch = next(pipeline.make_dataset("brushsprites", "train", data_dir, batch_size=4, seed=0, **BRUSH))
    assert batch["video"].shape == (4, 5, 32, 32, 3) and batch["video"].dtype == np.float32
    assert -1.0 <= batch["video"].min() and batch["video"].max() <= 1.0 and batch["video"].max() > 0.5
    assert batch["tracks"].shape == (4, 3, 5, 2) and batch["valid"].shape == (4, 3)
    assert [json.loads(b)["version"] for b in batch["brushes"]] == [1] * 4  # JSON strings, not bytes
    long = next(pipeline.make_dataset("sprites60", "train", data_dir, batch_size=2, seed=0, **LONG))
    assert long["video"].shape == (2, 33, 16, 16, 3) and long["visible"].shape == (2, 4, 33)


def test_train_shuffles_and_repeats_eval_reads_once(data_dir):
    def seeds(it, n):
        return [s for _ in range(n) for s in next(it)["seed"].tolist()]

    epoch = seeds(pipeline.make_dataset("brushsprites", "train", data_dir, 4, seed=1, **BRUSH), 6)
    stored = [int(ex["seed"]) for ex in _read_all(data_dir, "brushsprites", "train", BRUSH)]
    it = pipeline.make_dataset("brushsprites", "train", data_dir, 4, seed=1, **BRUSH)
    batches = [next(it) for _ in range(6)]  # two epochs: "index" is each clip's index in the split, in both
    assert [stored[i] for b in batches for i in b["index"]] == epoch != stored + stored
    assert sorted(epoch[:12]) == sorted(epoch[12:]) and epoch[:12] != epoch[12:]  # each epoch a new order
    assert seeds(pipeline.make_dataset("brushsprites", "train", data_dir, 4, seed=2, **BRUSH), 3) != epoch[:12]
    stored = [ex["seed"] for ex in _read_all(data_dir, "brushsprites", "eval", BRUSH)]
    once = list(pipeline.make_dataset("brushsprites", "eval", data_dir, 3, **BRUSH))
    assert len(once) == 1 and once[0]["seed"].tolist() == stored[:3]  # in order, remainder dropped


def test_resume_is_exact(data_dir):
    """Save the position after 4 batches; a fresh iterator set to it yields the same next 5 (across an epoch end)."""
    it = pipeline.make_dataset("brushsprites", "train", data_dir, batch_size=2, seed=3, **BRUSH)
    for _ in range(4):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(5)]
    fresh = pipeline.make_dataset("brushsprites", "train", data_dir, batch_size=2, seed=3, **BRUSH)
    fresh.set_state(state)
    for want, got in zip(expected, [next(fresh) for _ in range(5)], strict=True):
        assert want.keys() == got.keys()
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])


def test_shards_by_process(data_dir, monkeypatch):
    """Each process reads its rows of the one-process batches (so a run resumes on another process count): shuffled
    training batches and the eval split alike; processes that share rows (a ring across hosts) read the same."""
    for split, train, n in (("train", True, 5), ("train", False, 3)):  # 12 clips: 3 unshuffled batches of 4
        it = pipeline.make_dataset("brushsprites", split, data_dir, 4, train=train, **BRUSH)
        one = [next(it) for _ in range(n)]
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        parts = []
        for p in range(2):
            monkeypatch.setattr(jax, "process_index", lambda p=p: p)
            it = pipeline.make_dataset("brushsprites", split, data_dir, 4, train=train, **BRUSH)
            parts.append([next(it) for _ in range(n)])
        monkeypatch.undo()
        for k in range(n):
            np.testing.assert_array_equal(np.concatenate([parts[0][k]["seed"], parts[1][k]["seed"]]), one[k]["seed"])
            np.testing.assert_array_equal(parts[1][k]["video"], one[k]["video"][2:])
    shared = pipeline.make_dataset("brushsprites", "train", data_dir, 4, train=False, share=(1, 2), **BRUSH)
    np.testing.assert_array_equal(next(shared)["seed"], one[0]["seed"][2:])
    with pytest.raises(WanjaxError, match="batch_size=3 is not a multiple of the 2"):
        pipeline.make_dataset("brushsprites", "train", data_dir, 3, share=(0, 2), **BRUSH)


def test_errors_name_what_to_do(data_dir, tmp_path):
    with pytest.raises(WanjaxError, match="not built"):
        pipeline.make_dataset("brushsprites", "train", tmp_path, 2, **BRUSH)
    with pytest.raises(WanjaxError, match="fewer than one batch"):
        pipeline.make_dataset("brushsprites", "eval", data_dir, 8, **BRUSH)
    with pytest.raises(WanjaxError, match="data.name='moving_mnist'"):
        pipeline.build("moving_mnist", tmp_path)
    with pytest.raises(WanjaxError, match="data.frames=16"):
        pipeline.build("brushsprites", tmp_path, frames=16)


def test_config_batches(data_dir):
    cfg = config_from_dict(
        {"data": {"name": "brushsprites", "data_dir": str(data_dir), **BRUSH}, "train": {"batch_size": 2, "seed": 5}}
    )
    batch = next(pipeline.config_batches(cfg, "train"))
    assert batch["video"].shape == (2, 5, 32, 32, 3)


# imageio runs ffmpeg in a subprocess (fork + exec at once), which JAX's fork hook warns about needlessly.
@pytest.mark.filterwarnings("ignore:os.fork")
def test_video_latents_cached_once(tmp_path):
    """Clips in split folders -> stored latents/embeddings from the injected encoders; each encoder runs once a clip."""
    rng = np.random.default_rng(0)
    captions = {"train": "a red ball rolls", "eval": "waves on a beach"}
    for split, caption in captions.items():
        (tmp_path / "clips" / split).mkdir(parents=True)
        frames = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
        iio.imwrite(tmp_path / "clips" / split / f"{split}_clip.mp4", frames, fps=16)
        (tmp_path / "clips" / split / f"{split}_clip.txt").write_text(caption + "\n")
    calls = []

    def encode_video(video):
        calls.append(video.shape)
        return video[::4, ::8, ::8].astype(np.float32) / 255.0  # [3, 4, 4, 3]

    def encode_text(text):
        return np.full((5, 7), len(text), np.float32)

    build = dict(clips_dir=tmp_path / "clips", encode_video=encode_video, encode_text=encode_text)
    pipeline.build("video_latents", tmp_path / "data", frames=9, **build)
    assert calls == [(9, 32, 32, 3)] * 2
    for split, caption in captions.items():
        batch = next(pipeline.make_dataset("video_latents", split, tmp_path / "data", 1, frames=9, train=False))
        assert batch["caption"].tolist() == [caption] and batch["clip"].tolist() == [f"{split}_clip.mp4"]
        video = read_frames(tmp_path / "clips" / split / f"{split}_clip.mp4", 9)
        np.testing.assert_array_equal(batch["latents"][0], encode_video(video))
        np.testing.assert_array_equal(batch["context"][0], encode_text(caption))
    with pytest.raises(WanjaxError, match="needs at least"):
        read_frames(tmp_path / "clips" / "eval" / "eval_clip.mp4", 13)
    with pytest.raises(WanjaxError, match="no .mp4 files"):
        pipeline.build("video_latents", tmp_path / "other", frames=9, **build | {"clips_dir": tmp_path / "none"})
