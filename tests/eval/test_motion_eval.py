"""Brush-following metrics, calibrated on 50 BrushSprites clips: the ground truth scores near perfect, a frozen
first frame and sprites 3 px off the brush fail, and sensor-like noise barely moves the numbers."""

import numpy as np
import pytest

from wanjax.data.sprites import brush_sprites
from wanjax.eval.motion import clip_metrics, correlation_shift, evaluate, sprite_centroids

SEEDS = range(50)


@pytest.fixture(scope="module")
def clips() -> list[dict]:
    return [brush_sprites(seed) for seed in SEEDS]


def _pan(clip: dict) -> np.ndarray:
    """The clip's camera pan [2] px/frame (0 without a camera brush)."""
    return next((np.array(b["pan"]) for b in clip["brushes"]["brushes"] if b["mode"] == "camera"), np.zeros(2))


def test_sprite_centroids_find_sprites_by_colour(clips):
    clip = clips[0]
    xy, found = sprite_centroids(clip["video"], clip["colors"])
    assert xy.shape == clip["tracks"].shape and found.shape == clip["visible"].shape and found.all()
    assert np.abs(xy - clip["tracks"]).max() < 0.2
    grey = np.full_like(clip["video"], 128)
    xy, found = sprite_centroids(grey, clip["colors"])
    assert not found.any() and np.isnan(xy).all()


def test_correlation_shift_recovers_sub_pixel_shifts():
    """On a periodic band-limited image moved by a Fourier shift the correlation peak is exact (no window), so this
    checks the peak search and its sub-pixel refinement alone."""
    rng = np.random.default_rng(0)
    h, w = 24, 28
    ky, kx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    spectrum = (rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))) * (np.hypot(ky, kx) < 0.3)
    spectrum[0, 0] = 0.0
    a = np.fft.ifft2(spectrum).real
    for shift in ([0.3, -1.7], [2.2, 0.45], [-0.05, 0.0], [-2.0, 2.0]):
        b = np.fft.ifft2(np.fft.fft2(a) * np.exp(-2j * np.pi * (kx * shift[0] + ky * shift[1]))).real
        assert np.abs(correlation_shift(a, b) - shift).max() < 1e-3  # measured ≤ 1e-4


def test_ground_truth_scores_near_perfect(clips):
    m = evaluate([c["video"] for c in clips], clips)
    assert m["n_path"] + m["n_sway"] + m["n_static"] >= len(SEEDS) and m["n_flow"] >= 20
    assert m["epe"] < 0.1 and m["path_epe"] < 0.1 and m["sway_epe"] < 0.1  # measured 0.037, 0.043, 0.034
    assert m["path_success"] == 1.0 and m["sway_success"] == 1.0
    assert m["static_leakage"] < 0.05  # measured 0.024
    assert m["direction_cosine"] > 0.99  # measured 0.9998
    assert m["region_flow_error"] < 0.05  # measured 0.011
    per = [clip_metrics(c["video"], c) for c in clips]
    assert max(p["epe"].max() for p in per) < 0.2  # measured 0.10
    region = np.array([p["region_flow_error"] for p in per])
    region = region[~np.isnan(region)]
    # Seed 12: a sprite crosses a narrow (17 px) stream, covering up to a quarter of its box: 0.17 there.
    assert (region <= 0.1).mean() >= 0.9 and region.max() < 0.3


def test_frozen_first_frame_fails(clips):
    frozen = [np.repeat(c["video"][:1], len(c["video"]), axis=0) for c in clips]
    m = evaluate(frozen, clips)
    assert m["path_success"] == 0.0 and m["sway_success"] == 0.0
    assert m["path_epe"] > 5 and m["sway_epe"] > 1.5  # measured 10.4, 2.85
    assert m["direction_cosine"] == 0.0
    # A still picture does not follow the camera: a static sprite's leakage is the pan speed, a stream's error is its
    # whole velocity (stream plus pan).
    pans = [np.linalg.norm(_pan(c)) for c in clips for k in c["kinds"] if k == "static"]
    assert m["static_leakage"] == pytest.approx(np.mean(pans), abs=0.02)
    flows = [(b, _pan(c)) for c in clips for b in c["brushes"]["brushes"] if b["mode"] == "flow"]
    speeds = [
        np.linalg.norm(b["speed"] * np.array(b["direction"]) / np.linalg.norm(b["direction"]) + p) for b, p in flows
    ]
    assert m["region_flow_error"] == pytest.approx(np.mean(speeds), abs=1e-3)


def test_sprites_three_px_off_their_brush_fail(clips):
    """The ground-truth video scored against brushes asking for every sprite 3 px to the right of where it is (from
    frame 1): EPE 3 px, and success only where 3 px is within 15 % of the motion (drags of 20 px or more)."""
    moved = []
    for c in clips:
        tracks = c["tracks"].copy()
        tracks[:, 1:, 0] += 3.0
        moved.append(c | {"tracks": tracks})
    per = [clip_metrics(c["video"], m) for c, m in zip(clips, moved, strict=True)]
    epe = np.concatenate([p["epe"] for p in per])
    reach = np.concatenate([p["max_displacement"] for p in per])
    success = np.concatenate([p["success"] for p in per])
    assert np.abs(epe - 3).max() < 0.2
    assert not success[reach < 19].any() and success[reach > 21].all()
    m = evaluate([c["video"] for c in clips], moved)
    assert m["sway_success"] == 0.0 and m["path_success"] < 0.6  # measured 0.49: half the drags are ≥ 20 px
    assert m["static_leakage"] > 0.15  # the 3 px jump at frame 1, over 16 frames: ≥ 0.19


def test_noise_barely_moves_the_metrics(clips):
    rng = np.random.default_rng(0)
    noisy = [np.clip(np.rint(c["video"] + rng.normal(0, 8, c["video"].shape)), 0, 255).astype(np.uint8) for c in clips]
    m = evaluate(noisy, clips)
    assert m["epe"] < 0.3  # measured 0.050
    assert m["path_success"] == 1.0 and m["sway_success"] == 1.0
    assert m["static_leakage"] < 0.1 and m["region_flow_error"] < 0.1  # measured 0.057, 0.035


def test_lost_sprites_count_as_the_frame_diagonal(clips):
    clip = next(c for c in clips if "static" in c["kinds"] and "path" in c["kinds"])
    video = clip["video"].copy()
    video[1:] = 128
    m = clip_metrics(video, clip)
    assert np.allclose(m["epe"], np.hypot(64, 64)) and not m["success"].any()
    static = np.array(clip["kinds"]) == "static"
    assert np.allclose(m["static_leakage"][static], np.hypot(64, 64))
    assert np.all(m["direction_cosine"][~static] == 0.0)


def test_the_readme_eval_command_scores_the_bundled_model(tmp_path):
    """README "Motion brushes": `python scripts/eval_motion.py --ckpt wanjax/assets/demo ...` at 2 clips, 2 steps."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).parents[2]
    out = tmp_path / "motion.json"
    args = ["--ckpt", "wanjax/assets/demo", "--clips", "2", "--batch", "2", "--json", str(out), "--reference"]
    args.append("steps=2")
    subprocess.run([sys.executable, str(repo / "scripts" / "eval_motion.py"), *args], check=True, cwd=repo)
    results = json.loads(out.read_text())
    assert results["copy_first_frame"]["path_success"] == 0.0 and results["copy_first_frame"]["clips"] == 2
    runs = results["wanjax/assets/demo"]
    assert set(runs) == {"brushes", "dropped"} and runs["brushes"]["clips"] == 2 and runs["brushes"]["brushes"]
    assert not runs["dropped"]["brushes"] and runs["brushes"]["motion"] == "splat"
    scores = runs["brushes"]
    assert np.isnan(scores["static_leakage"]) == (scores["n_static"] == 0)  # no static brush in these 2 clips
    assert all(np.isfinite(v) for k, v in scores.items() if isinstance(v, float) and k != "static_leakage")


def test_video_psnr_pools_the_squared_error_per_group(clips):
    from wanjax.eval.motion import copy_first_frame, video_psnr

    assert all(v > 140 for v in video_psnr([c["video"] for c in clips], clips).values())  # the clips themselves
    held = copy_first_frame(clips)
    got = video_psnr(held, clips)
    flow = np.array([any(b["mode"] == "flow" for b in c["brushes"]["brushes"]) for c in clips])
    mse = np.array(
        [np.square(h[1:].astype(np.float64) - c["video"][1:]).mean() for h, c in zip(held, clips, strict=True)]
    )
    assert got["psnr"] == pytest.approx(10 * np.log10(255**2 / mse.mean()))
    assert got["psnr_flow"] == pytest.approx(10 * np.log10(255**2 / mse[flow].mean()))
    assert got["psnr_no_flow"] == pytest.approx(10 * np.log10(255**2 / mse[~flow].mean()))
    assert 12 < got["psnr_flow"] < got["psnr_no_flow"] < 40
