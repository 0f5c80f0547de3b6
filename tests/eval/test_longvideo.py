"""Long-video metrics, calibrated on 8 Sprites60 clips (60 s at 16 fps, 32 px): the ground truth reads as steady and
true to its sprites; the same clips "chained with drift" (a colour cast growing window by window, a brightness jump
at each window's start, the returning sprite recoloured) fail on every count."""

import json

import numpy as np
import pytest

from wanjax.data.sprites import PALETTE, SHAPES, sprites60
from wanjax.errors import WanjaxError
from wanjax.eval.longvideo import (
    colour_drift,
    evaluate_long,
    seams_and_flashes,
    sprite_coverage,
    sprite_identity,
    srgb_to_lab,
    temporal_flickering,
)

SEEDS = range(8)
WINDOW = 80  # frames per chained window (5 s): boundaries at frames 80, 160, …, 960
CAST = np.array([3.0, 0.0, -3.0], np.float32)  # RGB levels added per window, cumulative: (33, 0, -33) in the last
JUMP = 12.0  # grey levels each window after the first starts brighter by, fading out over 8 frames


def _boundaries(clip: dict) -> list[int]:
    return list(range(WINDOW, len(clip["video"]), WINDOW))


def _return_frame(clip: dict) -> tuple[int, int]:
    """(sprite, first frame back) of the clip's leave-and-return sprite."""
    s = clip["kinds"].index("leave")
    on = np.flatnonzero(clip["visible"][s])
    return s, int(on[np.diff(on).argmax() + 1])


def chained_with_drift(clip: dict) -> np.ndarray:
    """The clip's video as a chain of WINDOW-frame windows that drift: window w is cast by w · CAST, starts JUMP
    brighter (fading over 8 frames), and from its return the leaving sprite wears a palette colour the clip lacks
    (repainted by its anti-aliased coverage, so the rim blends as before)."""
    video = clip["video"].astype(np.float32)
    s, back = _return_frame(clip)
    new = next(p for p in PALETTE if not (clip["colors"] == p).all(axis=1).any()).astype(np.float32)
    cover = sprite_coverage(clip["video"][back:], clip["colors"][s : s + 1])[0]
    video[back:] += cover[..., None] * (new - clip["colors"][s])
    f = np.arange(len(video))
    window = f // WINDOW
    video += window[:, None, None, None] * CAST
    flash = np.where(window > 0, JUMP * np.maximum(0.0, 1 - (f - window * WINDOW) / 8), 0.0)
    video += flash[:, None, None, None]
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clips() -> list[dict]:
    return [sprites60(seed) for seed in SEEDS]


@pytest.fixture(scope="module")
def truth(clips) -> list[dict]:
    return [evaluate_long(c["video"], c, _boundaries(c)) for c in clips]


@pytest.fixture(scope="module")
def drifted(clips) -> list[dict]:
    return [evaluate_long(chained_with_drift(c), c, _boundaries(c)) for c in clips]


def _values(metrics: list[dict], key: str) -> np.ndarray:
    return np.array([m[key] for m in metrics], np.float64)


def test_lab_of_known_colours():
    lab = srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0], [128, 128, 128]], np.uint8))
    expected = [[100.0, 0.0, 0.0], [53.24, 80.09, 67.20], [0.0, 0.0, 0.0], [53.585, 0.0, 0.0]]
    assert np.abs(lab - expected).max() < 0.05
    assert np.allclose(srgb_to_lab(np.array([0.0, 0.0, 255.0])), [32.30, 79.19, -107.86], atol=0.05)  # blue, float


def test_still_video_is_steady():
    still = np.full((33, 16, 16, 3), 128, np.uint8)
    m = evaluate_long(still, boundaries=[16])
    assert m["temporal_flickering"] == 1.0
    assert m["drift_last"] == m["drift_max"] == m["drift_slope"] == 0.0
    assert m["flashes"] == 0 and m["seam_ratio"] == 0.0  # no motion, no seam: 0 / MOTION_FLOOR
    assert np.isnan(m["identity"]) and np.isnan(m["reentry_identity"])  # no clip, no sprite metrics
    # ±1 level of noise is no flash: k x median would count it, the absolute floor does not.
    noisy = (still + np.random.default_rng(0).integers(-1, 2, still.shape)).astype(np.uint8)
    m = seams_and_flashes(noisy, [16])
    assert m["flashes"] == 0 and 0.8 < m["median_difference"] < 1.0 and 0.8 < m["seam_ratio"] < 1.3


def test_temporal_flickering_is_vbench_formula():
    """(255 - mean over frame pairs of the mean absolute difference) / 255."""
    video = np.zeros((3, 4, 4, 3), np.uint8)
    video[1] = 51  # |d| = 51 then 51
    assert temporal_flickering(video) == pytest.approx(0.8)
    video[2] = 255  # 51 then 204: mean 127.5
    assert temporal_flickering(video) == pytest.approx(0.5)
    assert np.isnan(temporal_flickering(video[:1]))


def test_ground_truth_is_steady_and_true_to_its_sprites(truth):
    # Not 0: sprites moving over the textured background shift even the median colour; measured over 8 clips
    # drift_last 0-1.17 (mean 0.45), drift_max 0.84-2.75, against ≥ 24 for the drifted chain.
    assert _values(truth, "drift_last").max() < 1.5 and _values(truth, "drift_last").mean() < 0.6
    assert _values(truth, "drift_max").max() < 3.0
    assert np.abs(_values(truth, "drift_slope")).max() < 0.01  # measured ≤ 0.004
    assert _values(truth, "flashes").max() == 0
    seam = _values(truth, "seam_ratio")
    assert seam.min() > 0.85 and seam.max() < 1.15  # measured 0.93-1.07
    assert _values(truth, "temporal_flickering").min() > 0.985  # measured 0.990-0.995
    assert _values(truth, "identity").min() == 1.0 and _values(truth, "shape_match").min() == 1.0
    assert _values(truth, "reentry_identity").min() == 1.0
    assert _values(truth, "count_error").max() < 0.15  # measured 0.02-0.08: sprites 40-50 % hidden count
    motion = _values(truth, "motion")
    assert motion.min() > 0.9 and motion.max() < 1.1  # blob centres vs the tracks; measured 0.97-1.01 (eval clips)
    assert all(isinstance(v, float | int) for m in truth for v in m.values())
    json.dumps(truth)


def test_chained_with_drift_fails(truth, drifted):
    assert _values(drifted, "drift_last").min() > 20  # measured 24.2-25.0 ΔE
    assert _values(drifted, "drift_slope").min() > 0.4  # measured 0.43-0.45 ΔE/s
    assert _values(drifted, "flashes").min() >= 12  # one per boundary (measured 12-13)
    assert _values(drifted, "seam_ratio").min() > 4  # measured 5.2-10.5
    assert _values(drifted, "reentry_identity").max() == 0.0  # the returning sprite has another colour
    assert _values(drifted, "count_error").min() > 0.3  # measured 0.33-0.40: it is missing from 40 s on
    assert _values(drifted, "identity").max() < 0.92  # measured 0.85-0.90
    # VBench's score barely notices: the jumps are 12 of 255 levels on 12 pairs of 960.
    flicker = _values(truth, "temporal_flickering") - _values(drifted, "temporal_flickering")
    assert (flicker > 0).all() and flicker.max() < 0.005


def test_a_step_is_one_flash_and_a_spike_two(clips):
    video = clips[0]["video"]
    step, spike = video.astype(np.int16), video.astype(np.int16)
    step[400:] += 40
    spike[400] += 40
    step, spike = (np.clip(v, 0, 255).astype(np.uint8) for v in (step, spike))
    m = seams_and_flashes(step, [400])
    assert m["flashes"] == 1 and m["seam_ratio"] > 10  # measured 16.4
    assert seams_and_flashes(spike, [400])["flashes"] == 2
    assert 0.9 < seams_and_flashes(video, [400])["seam_ratio"] < 1.1  # measured 0.95


def test_wrong_shapes_and_missing_sprites_fail(clips):
    for clip in clips[:4]:
        # Scored against shapes each moved on by one (disc -> square -> triangle -> disc): every judged second fails;
        # the seconds where a sprite touches another keep their benefit of the doubt.
        wrong = clip | {"shapes": [SHAPES[(SHAPES.index(s) + 1) % 3] for s in clip["shapes"]]}
        m = sprite_identity(clip["video"], wrong)
        assert m["shape_match"] == 0.0 and m["identity"] < 0.65  # measured 0.26-0.43 on these 4
        # Grey sprites: none of them present, all of them missing from the count.
        grey = np.repeat(clip["video"].mean(axis=-1, keepdims=True), 3, axis=-1).round().astype(np.uint8)
        m = sprite_identity(grey, clip)
        assert m["identity"] == 0.0 and m["reentry_identity"] == 0.0 and not m["present"].any()
        assert m["count_error"] == pytest.approx(m["expected"].sum(axis=1).mean())


def test_colour_noise_has_no_sprites(clips):
    """What an untrained model samples: pixel noise and 2x2 blocks (scored identity 1.0 before presence needed
    steady blobs)."""
    rng = np.random.default_rng(0)
    for clip in clips[:4]:
        T, H, W, _ = clip["video"].shape
        blocks = rng.integers(0, 256, (T, H // 2, W // 2, 3), dtype=np.uint8).repeat(2, 1).repeat(2, 2)  # blobs
        for noise in (rng.integers(0, 256, clip["video"].shape, dtype=np.uint8), blocks):
            m = sprite_identity(noise, clip)
            assert m["identity"] == 0.0 and m["reentry_identity"] == 0.0 and not m["present"].any()


def test_frozen_first_frame_keeps_identity_but_not_the_count_nor_the_motion(clips):
    """Identity judges looks, not positions: a still first frame keeps every sprite's colour and shape; the count
    sees the leaving sprite that never leaves, and motion that nothing moves."""
    clip = clips[0]
    m = evaluate_long(np.repeat(clip["video"][:1], len(clip["video"]), axis=0), clip)
    assert m["identity"] == 1.0 and m["reentry_identity"] == 1.0
    assert m["count_error"] > 0.5  # measured 0.63: one sprite too many for 30 s of 60
    assert m["drift_max"] == 0.0 and m["temporal_flickering"] == 1.0 and m["flashes"] == 0
    assert m["motion"] == 0.0
    parked = clip | {"tracks": np.repeat(clip["tracks"][:, :1], len(clip["video"]), axis=1)}
    assert np.isnan(sprite_identity(clip["video"], parked)["motion"])  # no speed to compare with: not 0 / 0


def test_motion_is_the_speed_against_the_ground_truth(clips):
    """The clip played at half speed (each frame twice) moves its sprites half as fast: motion ≈ 1/2."""
    for clip in clips[:3]:
        slow = clip["video"][np.arange(len(clip["video"])) // 2]
        assert abs(sprite_identity(slow, clip)["motion"] - 0.5) < 0.1  # measured 0.49-0.55 on eval clips 0-2


def test_reentry_needs_a_sprite_that_leaves(clips):
    clip = clips[0]
    always = clip | {"visible": np.ones_like(clip["visible"])}
    assert np.isnan(sprite_identity(clip["video"], always)["reentry_identity"])


def test_colour_drift_per_second():
    """ΔE76 between median colours: a grey that turns reddish after 5 s of 10 drifts by exactly their ΔE."""
    video = np.full((161, 8, 8, 3), 128, np.uint8)
    video[80:] = (138, 128, 128)
    d = colour_drift(video)
    jump = np.linalg.norm(srgb_to_lab(np.array([138, 128, 128])) - srgb_to_lab(np.array([128, 128, 128])))
    assert d["delta_e"].shape == (10,) and np.allclose(d["delta_e"], [0] * 5 + [jump] * 5)
    assert d["drift_last"] == d["drift_max"] == pytest.approx(jump) and 4 < jump < 5
    assert d["drift_slope"] == pytest.approx(jump * 12.5 / 82.5)  # least squares through a 0/1 step at 5 of 10
    short = colour_drift(video[:9])  # one second: no slope
    assert short["delta_e"].shape == (1,) and np.isnan(short["drift_slope"])


def test_bad_inputs_are_user_errors(clips):
    clip = clips[0]
    with pytest.raises(WanjaxError, match="boundaries"):
        seams_and_flashes(clip["video"], [0])
    with pytest.raises(WanjaxError, match="boundaries"):
        seams_and_flashes(clip["video"], [len(clip["video"])])
    with pytest.raises(WanjaxError, match="frames"):
        sprite_identity(clip["video"][:161], clip)
