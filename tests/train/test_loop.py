"""The training loop on BrushSprites: loss falls, exact resume after kill -9, SIGTERM save, NaN stop."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wanjax.config import load_config
from wanjax.errors import WanjaxError
from wanjax.train.loop import every, train

TINY = str(Path(__file__).parents[2] / "configs" / "tiny.yaml")
# 8 fake devices: batch over fsdp=4, heads over tensor=2. 9 frames at 32x32 -> 3 latent frames of 4x4.
SMALL = [
    "data.frames=9", "data.height=32", "data.width=32", "data.train_clips=64", "data.eval_clips=8",
    "train.batch_size=4", "mesh.fsdp=4", "mesh.tensor=2", "train.warmup_steps=5", "train.lr=1e-3",
]  # fmt: skip


def _overrides(tmp_path, *extra):
    return [*SMALL, f"data.data_dir={tmp_path / 'data'}", f"train.workdir={tmp_path / 'run'}", *extra]


def _rows(workdir):
    return [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_on_brushsprites(tmp_path):
    sample = ["train.sample_every=60", "sample.frames=9", "sample.height=32", "sample.width=32", "sample.steps=2"]
    cfg = load_config(TINY, _overrides(tmp_path, "train.steps=60", "train.eval_every=30", *sample))
    summary = train(cfg, progress=False)
    (first_step, first), (last_step, last) = summary["eval_loss"][0], summary["eval_loss"][-1]
    assert (first_step, last_step) == (1, 60)
    assert last < 0.7 * first, summary["eval_loss"]
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, 61))
    assert {"loss", "lr", "grad_norm", "steps_per_s", "tokens_per_s"} <= rows[-1].keys()
    assert (tmp_path / "run" / "export" / "dit.safetensors").is_file()
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    assert np.load(tmp_path / "run" / "samples" / "step_0000060" / "sample.npz")["frames"].shape == (9, 32, 32, 3)


BRUSH = str(Path(__file__).parents[2] / "configs" / "brushsprites.yaml")


def test_brush_model_trains_and_its_export_samples_with_brushes(tmp_path):
    """configs/brushsprites.yaml at toy size: brushes compiled per clip, frame 0 given, progress sample from the
    first eval clip's image and brushes, and the export samples a brush file through the CLI."""
    from wanjax.cli import main

    small = ["model.dim=32", "model.num_heads=2", "model.num_layers=1", "model.ffn_dim=32", "train.steps=6",
             "train.eval_every=3", "train.sample_every=6", "sample.steps=2", "train.checkpoint_every=6"]  # fmt: skip
    cfg = load_config(BRUSH, _overrides(tmp_path, *small))
    assert cfg.model.motion == "splat" and cfg.train.cond_frames == 1
    summary = train(cfg, progress=False)
    assert summary["status"] == "done" and summary["end_step"] == 6
    assert all(np.isfinite(loss) for _, loss in summary["eval_loss"])
    progress = np.load(tmp_path / "run" / "samples" / "step_0000006" / "sample.npz")["frames"]
    assert progress.shape == (9, 32, 32, 3)
    repo = Path(__file__).parents[2] / "examples"
    args = ["--ckpt", str(tmp_path / "run" / "export"), "--image", str(repo / "sprites.png")]
    args += ["--brush", str(repo / "sprites.json"), "--out", str(tmp_path / "out"), "sample.steps=2"]
    assert main(["sample", BRUSH, *args]) == 0
    assert np.load(tmp_path / "out" / "sample.npz")["frames"].shape == (17, 64, 64, 3)


def _cli(tmp_path, *extra):
    """`wanjax train` of TINY in a subprocess (with the test session's compilation cache, conftest)."""
    cmd = [sys.executable, "-m", "wanjax.cli", "train", TINY, *_overrides(tmp_path, *extra)]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ | {"PYTHONUNBUFFERED": "1"}
    )


def _wait_for(predicate, proc, timeout=240):
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.stderr.read().decode()[-2000:]}")
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.2)


def test_exact_resume_after_kill_9(tmp_path):
    steps = ["train.steps=12", "train.checkpoint_every=4", "train.eval_every=100"]
    # The uninterrupted reference starts once the run that gets killed has compiled (and stored) the programs, and
    # it and the resumed run read them from the compilation cache, as a restarted job does. Same program, same bits.
    killed = _cli(tmp_path / "b", *steps)
    _wait_for(lambda: (tmp_path / "b" / "run" / "metrics.jsonl").is_file(), killed)
    straight = _cli(tmp_path / "a", *steps)
    ckpt = tmp_path / "b" / "run" / "checkpoints" / "4"
    _wait_for(lambda: ckpt.is_dir() and (ckpt / "meta").is_dir(), killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert straight.wait(timeout=400) == 0, straight.stderr.read().decode()[-2000:]
    reference = {r["step"]: r["loss"] for r in _rows(tmp_path / "a" / "run")}
    resumed = _cli(tmp_path / "b", *steps)
    assert resumed.wait(timeout=400) == 0, resumed.stderr.read().decode()[-2000:]
    rows = _rows(tmp_path / "b" / "run")
    assert [r["step"] for r in rows] == list(range(1, 13))
    after = {r["step"]: r["loss"] for r in rows if r["step"] > 4}
    assert after == {s: reference[s] for s in range(5, 13)}  # bitwise: the same float32 values


def test_sigterm_saves_the_current_step(tmp_path):
    proc = _cli(tmp_path, "train.steps=10000", "train.checkpoint_every=10000", "train.eval_every=10000")
    metrics = tmp_path / "run" / "metrics.jsonl"
    _wait_for(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    last = _rows(tmp_path / "run")[-1]["step"]
    assert json.loads(out.decode().strip().splitlines()[-1])["status"] == "preempted"
    assert sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == [last]


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = load_config(TINY, _overrides(tmp_path, "train.steps=20", "train.checkpoint_every=1", "train.lr=1e30",
                                       "train.warmup_steps=0", "train.grad_clip=1e30"))  # fmt: skip
    with pytest.raises(
        WanjaxError, match=r"loss is (nan|inf) at step \d+; training stopped. Last good checkpoint: step"
    ):
        train(cfg, progress=False)
    steps = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit())
    losses = {r["step"]: r["loss"] for r in _rows(tmp_path / "run")}
    assert steps and all(np.isfinite(losses[s]) for s in steps)


def test_every_zero_means_never_in_between():
    assert [n for n in range(1, 11) if every(n, 4)] == [4, 8]
    assert not any(every(n, 0) for n in range(1, 11))


def test_ema_decay_warms_up_so_the_random_init_fades():
    from wanjax.train.step import ema_decay

    decays = np.asarray([float(ema_decay(0.999, n)) for n in range(10000)])
    np.testing.assert_allclose(decays[:3], [1 / 10, 2 / 11, 3 / 12], rtol=1e-6)
    assert decays.max() == np.float32(0.999) and np.all(np.diff(decays) >= 0)
    assert np.prod(decays[:1000].astype(np.float64)) < 1e-20  # the init's weight in the EMA (fixed 0.999: 0.37)
