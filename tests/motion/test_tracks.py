"""Brushes -> tracks: BrushSprites ground truth to 1e-4 px, each mode's formula in numbers, static shapes."""

import numpy as np
import pytest

from wanjax.data.sprites import brush_sprites
from wanjax.errors import WanjaxError
from wanjax.motion import KINDS, compile_brushes, mask_pixels
from wanjax.motion.tracks import ease, path_offsets


def _file(*brushes, size=(64, 64), frames=17) -> dict:
    return {"version": 1, "size": list(size), "frames": frames, "brushes": list(brushes)}


def _points(tracks, brush: int) -> tuple[np.ndarray, np.ndarray]:
    """xy [n, T, 2] (float64) and visible [n, T] of one brush's tracks."""
    rows = tracks.valid & (tracks.brush_id == brush)
    return tracks.xy[rows].astype(np.float64), tracks.visible[rows]


def test_brush_sprites_ground_truth():
    """Every point of sprite s's brush moves exactly like the sprite's analytic track; seeds lie in its mask."""
    checked = set()
    for seed in range(50):
        clip = brush_sprites(seed)
        file = clip["brushes"]
        tracks = compile_brushes(file)
        for s, (mode, truth) in enumerate(zip(clip["kinds"], clip["tracks"].astype(np.float64), strict=True)):
            xy, visible = _points(tracks, s)
            assert len(xy) >= 1 and (tracks.kind[tracks.brush_id == s] == KINDS.index(mode)).all()
            np.testing.assert_allclose(xy - xy[:, :1], np.broadcast_to(truth - truth[0], xy.shape), atol=1e-4)
            assert visible.all()  # sprites never leave the frame
            mask = mask_pixels(file["brushes"][s]["mask"], (64, 64))
            assert mask[xy[:, 0, 1].astype(int), xy[:, 0, 0].astype(int)].all() and (xy[:, 0] % 1 == 0).all()
            checked.add(mode)
    assert checked == {"path", "sway", "static"}


def test_easings_and_path_speed():
    u = np.linspace(0, 1, 9)
    np.testing.assert_allclose(ease(u, "ease-in"), 1 - np.cos(np.pi * u / 2))
    np.testing.assert_allclose(ease(u, "ease-out"), np.sin(np.pi * u / 2))
    for easing in ("linear", "ease-in-out", "ease-in", "ease-out"):
        np.testing.assert_allclose(ease(np.array([0.0, 1.0]), easing), [0.0, 1.0], atol=1e-15)
    with pytest.raises(WanjaxError, match="easing='bounce' is not one of linear, ease-in-out, ease-in, ease-out"):
        ease(u, "bounce")
    # speed: 3 px/frame along a 10 + 4 px path, then stopped at its end; strength 2 doubles the displacement.
    offsets = path_offsets([[0, 0], [10, 0], [10, 4]], 9, speed=3.0)
    np.testing.assert_allclose(offsets, [[0, 0], [3, 0], [6, 0], [9, 0], [10, 2]] + [[10, 4]] * 4)
    brush = {"mode": "path", "mask": {"box": [2, 2, 6, 6]}, "path": [[4, 4], [20, 4]], "speed": 2.0, "strength": 2.0}
    xy, _ = _points(compile_brushes(_file(brush)), 0)
    moved = 2 * np.minimum(2 * np.arange(17), 16)  # 2 px/frame for 8 frames, then stopped; doubled
    np.testing.assert_allclose(xy[:, :, 0] - xy[:, :1, 0], np.broadcast_to(moved, (len(xy), 17)))
    np.testing.assert_allclose(xy[:, :, 1], xy[:, :1, 1].repeat(17, 1))


def test_flow_moves_at_speed_and_respawns_upstream():
    d = np.array([3.0, 4.0]) / 5
    flow = {"mode": "flow", "mask": {"box": [8, 8, 39, 39]}, "direction": [3, 4], "speed": 1.5}
    tracks = compile_brushes(_file(flow, frames=33))
    xy, visible = _points(tracks, 0)
    assert (tracks.kind[: len(xy)] == KINDS.index("flow")).all() and visible[:, 0].all()
    step = np.diff(xy, axis=1)  # [n, T-1, 2]
    along, across = step @ d, step @ np.array([-d[1], d[0]])
    np.testing.assert_allclose(across, 0, atol=1e-4)  # only ever along the arrow
    forward = np.abs(along - 1.5) < 1e-4
    assert forward.mean() > 0.8  # most steps are the plain speed; the rest wrap back by the box's extent along d
    extent = np.ptp(np.array([[8, 8], [39, 39], [8, 39], [39, 8]]) @ d) + 1
    np.testing.assert_allclose(along[~forward], 1.5 - extent, atol=1e-4)
    assert (~forward).any(axis=1).mean() > 0.9  # in 32 frames nearly every point leaves and respawns
    a = xy @ d
    assert a.min() >= (np.array([8, 8]) @ d) - 0.5 - 1e-4 and a.max() <= (np.array([39, 39]) @ d) + 0.5 + 1e-4
    inside = mask_pixels(flow["mask"], (64, 64))
    rounded = np.floor(xy + 0.5).astype(int)
    assert np.array_equal(visible, inside[rounded[..., 1].clip(0, 63), rounded[..., 0].clip(0, 63)])
    assert not visible.all()  # the box's corners along d are outside it


def test_sway_anchor_top_and_opposite_directions():
    left = {"mode": "sway", "mask": {"box": [4, 4, 20, 36]}, "direction": [2, 0], "amplitude": 3.0, "period": 8}
    right = left | {"mask": {"box": [40, 4, 56, 36]}, "direction": [-1, 0]}
    tracks = compile_brushes(_file(left | {"anchor": "top"}, right | {"strength": 0.5}), spacing=4.0)
    wave = 3.0 * np.sin(2 * np.pi * np.arange(17) / 8)
    xy, _ = _points(tracks, 0)
    y0 = xy[:, 0, 1]
    assert y0.min() == 4 and y0.max() == 36  # the grid spans the box: its top and bottom edges have points
    dx = xy[:, :, 0] - xy[:, :1, 0]
    np.testing.assert_allclose(dx[y0 == 4], 0, atol=1e-5)  # pinned at the anchor
    np.testing.assert_allclose(dx[y0 == 36], np.broadcast_to(wave, dx[y0 == 36].shape), atol=1e-4)
    np.testing.assert_allclose(dx, (y0[:, None] - 4) / 32 * wave, atol=1e-4)  # linear in between
    np.testing.assert_allclose(xy[:, :, 1], xy[:, :1, 1].repeat(17, 1))
    xy2, _ = _points(tracks, 1)
    dx2 = xy2[:, :, 0] - xy2[:, :1, 0]
    np.testing.assert_allclose(dx2, np.broadcast_to(-0.5 * wave, dx2.shape), atol=1e-4)  # rigid, the other way
    assert (dx[y0 == 36][:, 2] > 2.9).all() and (dx2[:, 2] < -1.4).all()


def test_camera_zoom_pan_and_background():
    static = {"mode": "static", "mask": {"circle": [20, 30, 6]}}
    camera = {"mode": "camera", "pan": [0.25, -0.5], "zoom": 1.02}
    tracks = compile_brushes(_file(static, camera, size=(48, 64)), spacing=4.0)
    centre, f = np.array([23.5, 31.5]), np.arange(17)[:, None]
    for brush in (0, 1):
        xy, visible = _points(tracks, brush)
        expect = centre + 1.02**f * (xy[:, :1] - centre) + f * np.array([0.25, -0.5])
        np.testing.assert_allclose(xy, expect, atol=1e-4)
        inside = (xy[..., 0] >= -0.5) & (xy[..., 0] < 47.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < 63.5)
        assert np.array_equal(visible, inside)
    background, _ = _points(tracks, 1)
    assert (tracks.kind[tracks.brush_id == 1] == KINDS.index("camera")).all()
    assert 48 * 64 / 16 * 0.8 < len(background) < 48 * 64 / 16  # a 4-px grid over the frame, less the circle
    disc = mask_pixels(static["mask"], (48, 64))
    assert not disc[background[:, 0, 1].astype(int), background[:, 0, 0].astype(int)].any()
    assert not tracks.visible[tracks.valid].all()  # zooming in pushes the border points out of frame


def test_static_shapes_and_padding():
    static = {"mode": "static", "mask": {"box": [0, 0, 7, 7]}}
    for count, max_tracks in ((1, 256), (5, 256), (20, 64), (64, 64)):
        tracks = compile_brushes(_file(*[static] * count), max_tracks=max_tracks)
        n = tracks.valid.sum()
        assert tracks.xy.shape == (max_tracks, 17, 2) and tracks.xy.dtype == np.float32
        assert tracks.visible.shape == (max_tracks, 17) and tracks.valid.shape == (max_tracks,)
        assert tracks.brush_id.dtype == np.int32 and tracks.kind.dtype == np.int32
        assert (tracks.size, tracks.frames) == ((64, 64), 17)
        assert tracks.valid[:n].all() and n == min(4 * count, max_tracks)  # 4 seeds per 8x8 box at spacing 4
        assert (tracks.xy[n:] == 0).all() and not tracks.visible[n:].any()
        assert (tracks.brush_id[n:] == -1).all() and (tracks.kind[n:] == -1).all()
        assert np.array_equal(np.unique(tracks.brush_id[:n]), np.arange(count))
        np.testing.assert_array_equal(tracks.xy[:n], tracks.xy[:n, :1].repeat(17, 1))  # pinned
    empty = compile_brushes(_file(), max_tracks=8)
    assert empty.xy.shape == (8, 17, 2) and not empty.valid.any()


def test_subsampling_is_proportional_and_spread():
    big = {"mode": "static", "mask": {"box": [0, 0, 63, 47]}}  # 12 x 16 = 192 seeds at spacing 4
    small = {"mode": "static", "mask": {"circle": [32, 56, 2]}, "density": 0.01}  # one seed, the centre pixel
    tracks = compile_brushes(_file(big, small, big | {"density": 0.25}), max_tracks=100)
    counts = np.bincount(tracks.brush_id[tracks.valid])
    assert tracks.valid.sum() == 100 and counts[1] == 1  # 192 + 1 + 48 seeds: 1 each, the rest shared by count
    assert abs(counts[0] - 100 * 192 / 241) <= 2 and abs(counts[2] - 100 * 48 / 241) <= 2
    assert np.array_equal(tracks.xy[tracks.brush_id == 1, 0], [[32, 56]])
    xy = tracks.xy[tracks.brush_id == 0, 0]
    cells = np.histogram2d(xy[:, 0], xy[:, 1], bins=(4, 3), range=((-0.5, 63.5), (-0.5, 47.5)))[0]
    assert cells.min() >= 0.5 * cells.mean()  # a kept subset still covers the whole box
    assert len(np.unique(xy, axis=0)) == len(xy)


def test_density_deterministic_and_tiny_masks():
    box = {"mode": "static", "mask": {"box": [0, 0, 31, 31]}}
    counts = [compile_brushes(_file(box | {"density": d})).valid.sum() for d in (1.0, 4.0)]
    assert counts == [64, 256]  # 8 x 8 at spacing 4; spacing 2 fills max_tracks
    pixel = {"mode": "path", "mask": {"circle": [10.3, 10.2, 0.5]}, "path": [[10, 10], [12, 10]]}
    tracks = compile_brushes(_file(pixel))
    assert tracks.valid.sum() == 1 and tracks.xy[0, 0].tolist() == [10, 10] and tracks.xy[0, -1].tolist() == [12, 10]
    clip = brush_sprites(11)["brushes"]
    a, b = compile_brushes(clip), compile_brushes(clip)
    for field in ("xy", "visible", "valid", "brush_id", "kind"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_tracks": 2}, r"max_tracks=2 is fewer than the 3 brush regions .*; use max_tracks ≥ 3"),
        ({"max_tracks": 0}, r"max_tracks=0 must be an integer ≥ 1"),
        ({"spacing": 0.0}, r"spacing=0\.0 must be a finite number of pixels > 0"),
        ({"size": (32, 32)}, r"size: the brushes are drawn on a 64x64 image but the image is 32x32"),
        ({"frames": 33}, r"frames: the brush file has frames 17 but the video has 33"),
    ],
)
def test_compile_errors(kwargs, message):
    static = {"mode": "static", "mask": {"box": [0, 0, 7, 7]}}
    with pytest.raises(WanjaxError, match=message):
        compile_brushes(_file(static, static, static), **kwargs)
