"""`wanjax data build`: real clips + captions -> latents, text states, point tracks; killed and resumed; a corrupt clip
named; and training's random subsets of the stored tracks reaching the motion branch."""

import dataclasses
import json
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import nnx
from wan_folder import TEXT, write_tokenizer

import wanjax
from wanjax.cli import main
from wanjax.config import VAEConfig, load_config
from wanjax.data.pipeline import config_batches
from wanjax.data.sprites import brush_sprites
from wanjax.data.track_sampling import sample_tracks
from wanjax.io.export import write_video
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.train.step import loss_fn

pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # imageio's ffmpeg subprocess under JAX's fork hook
CLIPS, FRAMES = 10, 9


def _random(make):
    """The module `make` builds, with N(0, 0.1) numpy weights: initialising the VAE op by op takes ~50 s on 2 cores."""
    graph, state = nnx.split(nnx.eval_shape(make))
    rng = np.random.default_rng(0)
    return nnx.merge(graph, jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.1, x.shape), x.dtype), state))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    wan = root / "wan"  # the parts a build reads: a diffusers Wan folder's vae/, text_encoder/, tokenizer/
    wanjax.save_vae(_random(lambda: wanjax.WanVAE(VAEConfig.tiny(), rngs=nnx.Rngs(0))), wan / "vae")
    wanjax.save_text_encoder(_random(lambda: wanjax.UMT5Encoder(TEXT, rngs=nnx.Rngs(0))), wan / "text_encoder")
    write_tokenizer(wan / "tokenizer")
    clips = root / "clips"
    clips.mkdir()
    for i in range(CLIPS):
        write_video(clips / f"clip{i:02d}.mp4", brush_sprites(i, FRAMES, 64, 64)["video"], 16)
        (clips / f"clip{i:02d}.txt").write_text(f"the cat {'runs' if i % 2 else 'sits'}\n")
    (clips / "zz_broken.mp4").write_bytes((clips / "clip00.mp4").read_bytes()[:300])
    (clips / "zz_broken.txt").write_text("a dog\n")
    config = {
        "model": {"dim": 32, "ffn_dim": 48, "num_heads": 2, "num_layers": 1, "text_dim": 64, "freq_dim": 32,
                  "motion": "splat", "motion_dim": 8},
        "vae": {"preset": "tiny"},
        "data": {"name": "video_latents", "data_dir": str(root / "data"), "frames": FRAMES, "height": 48, "width": 64,
                 "track_points": 48, "track_reseed": 12, "track_count": [2, 6], "track_spread": 4.0},
        "train": {"batch_size": 2, "max_tracks": 16},
        "sample": {"text_tokens": 12},
    }  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root, ["data", "build", str(root / "config.yaml"), "--clips", str(clips), "--ckpt", str(wan)]


def finished(cache):
    """The cached clips a build has finished: not its `.tmp-*` files, which a kill can leave half-written."""
    return [p for p in cache.glob("*/*/*.npz") if not p.name.startswith(".tmp-")]


def test_build_killed_halfway_resumes_and_names_a_corrupt_clip(setup, capsys):
    root, args = setup
    cache = root / "data" / "video_latents_clips"
    proc = subprocess.Popen([sys.executable, "-m", "wanjax.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        while len(finished(cache)) < 3:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
    finally:
        proc.kill()
        err = proc.communicate()[1]
    done = {p.name: p.stat().st_mtime_ns for p in finished(cache)}
    assert 3 <= len(done) < CLIPS and "clips:" in err  # the progress bar
    assert main(args) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.splitlines()[-1])
    assert summary["clips"] == CLIPS + 1 and summary["kept"] == len(done) and summary["made"] == CLIPS - len(done)
    assert list(summary["skipped"]) == ["zz_broken.mp4"] and "cannot decode" in summary["skipped"]["zz_broken.mp4"]
    assert err.count("wanjax data build: skipped zz_broken.mp4: ") == 1
    assert {p.name: p.stat().st_mtime_ns for p in finished(cache) if p.name in done} == done  # not redone

    cfg = load_config(root / "config.yaml")
    batch = next(config_batches(cfg, "train"))
    assert batch["latents"].shape == (2, 3, 6, 8, 16) and batch["context"].shape == (2, 12, 64)
    assert np.isfinite(batch["latents"]).all() and np.abs(batch["context"]).max() > 0
    assert batch["tracks_xy"].shape == (2, 48, FRAMES, 2) and batch["tracks_valid"].sum(axis=1).min() >= 30
    # train.max_tracks rows of motion, 2 to 6 tracks each clip, in latent cells, through the motion branch
    assert batch["motion_xy"].shape == (2, 16, 3, 4, 2)
    assert 2 <= batch["motion_valid"].sum(axis=1).min() and batch["motion_valid"].sum(axis=1).max() <= 6
    model = WanDiT(cfg.model, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)  # as if trained: the zero-initialised layers (motion_proj, head) too
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    nnx.update(
        model,
        jax.tree.unflatten(tree, [0.05 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]),
    )
    keys = ("latents", "context") + tuple(k for k in batch if k.startswith("motion_"))
    inputs = {k: jnp.asarray(batch[k]) for k in keys}
    attn = AttnSpec.from_config(cfg.mesh, None)
    cfg_all = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, motion_dropout=0.0))
    with_tracks = loss_fn(model, inputs, jax.random.key(0), cfg_all, attn)
    without = loss_fn(model, {k: inputs[k] for k in ("latents", "context")}, jax.random.key(0), cfg_all, attn)
    assert abs(float(with_tracks) - float(without)) > 1e-6


def test_sample_tracks_count_spread_dropout():
    """A random subset of the tracks visible in frame 0: count in [a, b], starts at least `spread` apart, and each
    kept track hidden at a frame with probability `dropout`; the defaults keep `rows` whole tracks."""
    rng = np.random.default_rng(0)
    P, T = 400, 9
    xy = rng.uniform(0, 63, (P, T, 2)).astype(np.float32)
    visible = np.ones((P, T), bool)
    visible[:50, 0] = False  # not seen in frame 0: never picked
    valid = np.arange(P) < 380
    counts, gaps, hidden = [], [], []
    for _ in range(50):
        t = sample_tracks(xy, visible, valid, rng, rows=64, size=(64, 64), count=(5, 20), spread=6.0, dropout=0.25)
        n = int(t.valid.sum())
        counts.append(n)
        start = t.xy[:n, 0]
        d = np.linalg.norm(start[:, None] - start[None], axis=-1) + np.eye(n) * 99
        gaps.append(d.min())
        hidden.append(1 - t.visible[:n, 1:].mean())
        assert t.visible[:n, 0].all() and not t.visible[n:].any() and (t.kind[:n] == 0).all()
        rows = [np.flatnonzero((xy[:, 0] == s).all(axis=1))[0] for s in start]
        assert all(50 <= r < 380 for r in rows)
    assert min(counts) == 5 and max(counts) >= 18 and min(gaps) >= 6.0
    assert 0.2 < np.mean(hidden) < 0.3
    whole = sample_tracks(xy, visible, valid, rng, rows=64, size=(64, 64))
    assert whole.valid.sum() == 64 and whole.visible[:64].all()
