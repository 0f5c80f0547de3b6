"""Procedural clips: determinism, brush files, tracks that agree with the formulas and with the pixels."""

import json

import numpy as np
import pytest

from wanjax.data.sprites import SHAPES, brush_sprites, camera_offsets, path_offsets, sprites60, sway_offsets
from wanjax.errors import WanjaxError

SEEDS = range(12)
MODE_FIELDS = {
    "path": {"mode", "mask", "path", "easing", "strength"},
    "sway": {"mode", "mask", "direction", "amplitude", "period", "phase", "anchor"},
    "static": {"mode", "mask"},
    "flow": {"mode", "mask", "direction", "speed"},
    "camera": {"mode", "pan", "zoom"},
}


def _centroid_errors(clip: dict) -> np.ndarray:
    """|colour centroid - track| over every frame where a sprite is wholly in frame and no other sprite is near.

    Backgrounds are grey, so a pixel's chroma is coverage x the sprite's chroma: project onto it for coverage."""
    video, tracks, radii = clip["video"].astype(np.float64), clip["tracks"], clip["radii"]
    height, width = video.shape[1:3]
    yy, xx = np.mgrid[:height, :width]
    chroma = video - video.mean(-1, keepdims=True)
    gaps = np.linalg.norm(tracks[:, None] - tracks[None], axis=-1) - (radii[:, None] + radii[None] + 2)[..., None]
    alone = (gaps + np.eye(len(radii))[..., None] * 1e9 > 0).all(axis=1)  # [S, T]
    errors = []
    for s, (radius, color) in enumerate(zip(radii, clip["colors"].astype(np.float64), strict=True)):
        c = color - color.mean()
        for frame, (x, y), ok in zip(chroma, tracks[s], alone[s], strict=True):
            if not ok or not (radius + 1 <= x <= width - 2 - radius and radius + 1 <= y <= height - 2 - radius):
                continue
            near = (xx - x) ** 2 + (yy - y) ** 2 <= (radius + 1.5) ** 2
            cover = np.clip(frame @ c / (c @ c), 0, 1) * near
            errors.append(np.hypot((cover * xx).sum() / cover.sum() - x, (cover * yy).sum() / cover.sum() - y))
    return np.array(errors)


def test_brush_sprites_deterministic():
    a, b, c = brush_sprites(3), brush_sprites(3), brush_sprites(4)
    assert a["video"].tobytes() == b["video"].tobytes()
    assert a["tracks"].tobytes() == b["tracks"].tobytes()
    assert json.dumps(a["brushes"]) == json.dumps(b["brushes"])
    assert a["video"].tobytes() != c["video"].tobytes()


def test_brush_sprites_outputs_and_brush_file():
    modes, easings = set(), set()
    for seed in SEEDS:
        clip = brush_sprites(seed, frames=9, height=48, width=40)
        s = len(clip["kinds"])
        assert 1 <= s <= 3
        assert clip["video"].shape == (9, 48, 40, 3) and clip["video"].dtype == np.uint8
        assert clip["tracks"].shape == (s, 9, 2) and clip["tracks"].dtype == np.float32
        assert clip["visible"].shape == (s, 9) and clip["visible"].all()  # sprites never touch nor leave
        assert clip["colors"].shape == (s, 3) and len({tuple(c) for c in clip["colors"]}) == s
        assert set(clip["shapes"]) <= set(SHAPES)
        brushes = clip["brushes"]
        assert json.loads(json.dumps(brushes)) == brushes
        assert (brushes["version"], brushes["size"], brushes["frames"]) == (1, [40, 48], 9)
        assert [b["mode"] for b in brushes["brushes"][:s]] == clip["kinds"]
        for brush in brushes["brushes"]:
            assert set(brush) == MODE_FIELDS[brush["mode"]]
            modes.add(brush["mode"])
            easings.add(brush.get("easing"))
            if "mask" in brush:
                ((kind, value),) = brush["mask"].items()
                points = {"box": lambda v: [v[:2], v[2:]], "circle": lambda v: [v[:2]], "polygon": lambda v: v}[kind]
                assert all(0 <= x <= 39 and 0 <= y <= 47 for x, y in points(value)), brush
    assert modes == set(MODE_FIELDS) and {"linear", "ease-in-out"} <= easings


def _mask_centre(mask: dict) -> np.ndarray:
    ((kind, value),) = mask.items()
    return {"circle": lambda v: v[:2], "box": lambda v: [(v[0] + v[2]) / 2, (v[1] + v[3]) / 2]}.get(
        kind, lambda v: np.mean(v, axis=0)
    )(value)


def test_tracks_are_the_documented_brush_formulas():
    """What wanjax.motion must reproduce: centre + brush displacement + f * pan, from the brush file alone."""
    for seed in SEEDS:
        clip = brush_sprites(seed)
        file = clip["brushes"]
        frames = file["frames"]
        camera = [b for b in file["brushes"] if b["mode"] == "camera"]
        shift = camera_offsets(camera[0]["pan"] if camera else [0.0, 0.0], frames)
        for brush, track in zip(file["brushes"], clip["tracks"], strict=False):
            centre = _mask_centre(brush["mask"])
            if brush["mode"] == "path":
                np.testing.assert_allclose(brush["path"][0], centre, atol=1e-3)
                offsets = path_offsets(brush["path"], frames, brush["easing"], brush["strength"])
            elif brush["mode"] == "sway":
                args = (brush["direction"], brush["amplitude"], brush["period"], brush["phase"])
                offsets = sway_offsets(*args, frames)
            else:
                offsets = np.zeros((frames, 2))
            np.testing.assert_allclose(track, centre + offsets + shift, atol=2e-3)


def test_path_easing_by_arc_length():
    linear = path_offsets([[0, 0], [8, 0], [8, 4]], 5)
    np.testing.assert_allclose(linear, [[0, 0], [3, 0], [6, 0], [8, 1], [8, 4]])
    eased = path_offsets([[0, 0], [8, 0]], 5, "ease-in-out")
    np.testing.assert_allclose(eased[:, 0], 8 * (1 - np.cos(np.pi * np.arange(5) / 4)) / 2)
    np.testing.assert_allclose(sway_offsets([0, 2], 3.0, 4, 0.0, 3), [[0, 0], [0, 3], [0, 0]], atol=1e-12)


def test_tracks_match_colour_centroids():
    errors = np.concatenate([_centroid_errors(brush_sprites(seed)) for seed in SEEDS])
    errors60 = _centroid_errors(sprites60(5, frames=161))
    assert len(errors) > 300 and len(errors60) > 20
    assert errors.max() <= 0.3 and errors60.max() <= 0.3, (errors.max(), errors60.max())


def _shift_error(video: np.ndarray, frame: int, shift: np.ndarray, region: np.ndarray) -> float:
    """Mean |frame - frame 0 moved by `shift`| over `region` (bilinear resampling of frame 0)."""
    height, width = region.shape
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    x, y = xx - shift[0], yy - shift[1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    img = video[0].astype(np.float64).mean(-1)
    pick = lambda dy, dx: img[np.clip(y0 + dy, 0, height - 1), np.clip(x0 + dx, 0, width - 1)]  # noqa: E731
    moved = (1 - fy) * ((1 - fx) * pick(0, 0) + fx * pick(0, 1)) + fy * ((1 - fx) * pick(1, 0) + fx * pick(1, 1))
    return float(np.abs(video[frame].astype(np.float64).mean(-1) - moved)[region].mean())


@pytest.mark.parametrize("mode", ["camera", "flow"])
def test_camera_and_stream_move_the_texture(mode):
    """Away from sprites, frame f is frame 0 moved by f * pan (camera), or inside the stream's box by f * speed along
    its direction (flow)."""
    for seed in range(30):
        clip = brush_sprites(seed, flow_prob=float(mode == "flow"), camera_prob=float(mode == "camera"))
        brush = clip["brushes"]["brushes"][-1]
        yy, xx = np.mgrid[:64, :64]
        if mode == "camera":
            frame, shift = 16, 16 * np.array(brush["pan"])
            x0, y0, x1, y1 = 2 + abs(shift[0]), 2 + abs(shift[1]), 61 - abs(shift[0]), 61 - abs(shift[1])
        else:
            d = np.array(brush["direction"])
            frame, shift = 1, brush["speed"] * d / np.linalg.norm(d)
            x0, y0, x1, y1 = np.array(brush["mask"]["box"]) + [3, 3, -3, -3]
        region = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)  # clear of frame and stream edges
        for track, radius in zip(clip["tracks"], clip["radii"], strict=True):
            for x, y in track[[0, frame]]:
                region &= (xx - x) ** 2 + (yy - y) ** 2 > (radius + 2) ** 2
        if np.abs(shift).max() < 1 or region.sum() < 50:
            continue
        moved = _shift_error(clip["video"], frame, shift, region)
        assert moved < 0.35 * _shift_error(clip["video"], frame, np.zeros(2), region), seed


def test_sprites60_leaves_and_returns():
    clip = sprites60(7)  # the full 60 s: 961 frames
    video, tracks, visible = clip["video"], clip["tracks"], clip["visible"]
    s = len(clip["kinds"])
    assert 2 <= s <= 4 and clip["kinds"][-1] == "leave" and set(clip["kinds"][:-1]) <= {"bounce", "orbit"}
    assert video.shape == (961, 32, 32, 3) and video.dtype == np.uint8
    assert tracks.shape == (s, 961, 2) and visible.shape == (s, 961) and visible.dtype == bool
    second = 16  # frames
    away = visible[-1]
    assert away[: 10 * second - second].all() and away[40 * second + second :].all()
    assert not away[10 * second + second : 40 * second - second].any()
    x, y = tracks[-1, 10 * second + 8 : 40 * second - 8].T
    assert ((x < -1) | (x > 32)).all() and ((y > 0) & (y < 31)).all()
    for track, inside in zip(tracks[:-1], visible[:-1], strict=True):  # bouncers and orbiters stay in frame
        assert (track > 0).all() and (track < 31).all() and inside.mean() > 0.5


def test_sprites60_deterministic_and_short_clips():
    a, b = sprites60(1, frames=21, height=16, width=24), sprites60(1, frames=21, height=16, width=24)
    assert a["video"].shape == (21, 16, 24, 3)
    assert a["video"].tobytes() == b["video"].tobytes() and a["tracks"].tobytes() == b["tracks"].tobytes()
    assert sprites60(2, frames=21, height=16, width=24)["video"].tobytes() != a["video"].tobytes()


@pytest.mark.parametrize(
    "make, kwargs, field",
    [
        (brush_sprites, {"frames": 16}, "frames=16"),
        (brush_sprites, {"height": 16}, "height=16"),
        (sprites60, {"frames": 60}, "frames=60"),
        (sprites60, {"width": 8}, "width=8"),
    ],
)
def test_errors_name_the_field(make, kwargs, field):
    with pytest.raises(WanjaxError, match=field):
        make(0, **kwargs)
