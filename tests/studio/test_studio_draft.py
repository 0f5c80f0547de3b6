"""The studio's pure parts: brush edits (clicks, modes, fields, painting), the canvas, frame fitting, temp files."""

import numpy as np
import pytest

from wanjax.errors import WanjaxError
from wanjax.motion import compile_brushes, load_brushes, mask_pixels
from wanjax.motion.draw import overlay_brushes
from wanjax.studio import draft as edit
from wanjax.studio.canvas import check, display_scale, paint_layers, preview
from wanjax.studio.engine import MAX_SIDE, fit_frame
from wanjax.studio.workdir import Workdir

SIZE, T = (48, 40), 17  # W, H: not square, so x and y cannot be swapped unnoticed


def clicks(draft, tool, *points):
    for p in points:
        draft = edit.click(draft, tool, p)
    return draft


def spec_of(draft):
    spec, error = check(draft)
    assert error is None, error
    return spec


def test_shapes_from_clicks():
    d = clicks(edit.Draft(SIZE, T), "box", (20, 5), (3, 30))
    assert d.clicks == () and d.brush == {"mode": "static", "mask": {"box": [3, 5, 20, 30]}}
    d = clicks(edit.add_brush(d), "circle", (10, 10), (13, 14))
    assert d.brush["mask"] == {"circle": [10, 10, 5.0]}
    d = clicks(edit.add_brush(d), "polygon", (1, 1), (9, 1), (9, 9))
    assert d.brush["mask"] == {"polygon": [[1, 1], [9, 1], [9, 9]]} and len(d.clicks) == 3  # still open
    d = clicks(d, "polygon", (1, 9), (1.5, 1))  # near the first corner: closed
    assert d.brush["mask"] == {"polygon": [[1, 1], [9, 1], [9, 9], [1, 9]]} and d.clicks == ()
    assert [b["mode"] for b in spec_of(d)["brushes"]] == ["static"] * 3


def test_arrows_mean_the_whole_clip():
    d = clicks(edit.Draft(SIZE, T), "box", (10, 10), (20, 20))
    path = clicks(edit.set_mode(d, "path"), "arrow", (15, 15), (30, 15), (30, 25))
    assert path.brush["path"] == [[15, 15], [30, 15], [30, 25]]
    sway = clicks(edit.set_mode(d, "sway"), "arrow", (15, 15), (15, 23))
    assert sway.brush["direction"] == [0.0, 1.0] and sway.brush["amplitude"] == 4.0 and sway.brush["period"] == T - 1
    flow = clicks(edit.set_mode(d, "flow"), "arrow", (10, 10), (42, 10))
    assert flow.brush["direction"] == [1.0, 0.0] and flow.brush["speed"] == 2.0
    camera = clicks(edit.set_mode(d, "camera"), "arrow", (0, 0), (8, -16))
    assert camera.brush == {"mode": "camera", "pan": [0.5, -1.0], "zoom": 1.0}  # no mask, no strength
    for draft in (path, sway, flow, camera):
        spec_of(draft)
    assert clicks(edit.set_mode(d, "static"), "arrow", (1, 1)) == edit.set_mode(d, "static")
    assert edit.clear_path(path).brush == edit.set_mode(d, "path").brush


def test_modes_keep_what_still_applies():
    d = clicks(edit.Draft(SIZE, T), "box", (10, 10), (20, 20))
    d = edit.set_fields(edit.set_mode(d, "sway"), {"strength": 0.5, "direction": [0.0, 1.0], "anchor": "top"})
    flow = edit.set_mode(d, "flow")
    assert flow.brush == {"mode": "flow", "mask": d.brush["mask"], "strength": 0.5, "direction": [0.0, 1.0],
                          "speed": 1.0}  # fmt: skip
    assert edit.set_mode(edit.set_mode(d, "path"), "sway").brush["anchor"] == "none"  # another mode's fields reset
    path = edit.set_fields(edit.set_mode(d, "path"), {"speed": 2.0, "amplitude": 9.0})  # amplitude: not a path's
    assert "easing" not in path.brush and path.brush["speed"] == 2.0 and "amplitude" not in path.brush
    assert edit.set_fields(path, {"speed": 0}).brush == edit.set_mode(d, "path").brush | {"strength": 0.5}


def test_brush_list_edits():
    d = edit.add_brush(edit.add_brush(edit.Draft(SIZE, T), "flow"), "sway")
    assert [label for label, _ in edit.labels(d)] == ["1 · flow", "2 · sway"] and d.current == 1
    assert edit.select(d, 0).current == 0 and edit.select(d, 5) == d
    d = edit.delete_brush(d)
    assert [b["mode"] for b in d.brushes] == ["flow"] and d.current == 0
    assert edit.delete_brush(edit.delete_brush(d)) == edit.Draft(SIZE, T, (), -1)
    assert edit.click(edit.Draft(SIZE, T), "arrow", (1, 1)) == edit.Draft(SIZE, T)  # an arrow needs a brush
    d = clicks(edit.Draft(SIZE, T), "box", (1, 1), (5, 5))
    assert edit.from_file(spec_of(d)) == edit.Draft(SIZE, T, tuple(spec_of(d)["brushes"]), 0)


def test_painted_masks_round_trip_through_rle():
    rng = np.random.default_rng(0)
    mask = rng.random((SIZE[1], SIZE[0])) < 0.3
    mask[0, 0] = True  # a run that starts at the first pixel: counts begin with 0 background
    d = edit.set_mask(edit.Draft(SIZE, T), mask)
    assert d.brush["mask"]["rle"]["counts"][0] == 0
    assert np.array_equal(mask_pixels(spec_of(d)["brushes"][0]["mask"], SIZE), mask)
    s = display_scale(SIZE)
    layer = paint_layers(np.zeros((SIZE[1], SIZE[0], 3), np.uint8), d, 256)["layers"][0]
    assert layer.shape == (SIZE[1] * s, SIZE[0] * s, 4)
    assert np.array_equal(edit.painted_mask(layer[..., 3], s), mask)  # what the editor shows is what comes back
    assert "mask" not in edit.set_mask(d, np.zeros_like(mask)).brush


def test_snap_lands_on_pixel_centres():
    s = display_scale(SIZE)
    assert edit.snap((0, 0), s, SIZE) == (0.0, 0.0)
    assert edit.snap((5 * s + s - 1, 7 * s), s, SIZE) == (5.0, 7.0)
    assert edit.snap((10_000, -3), s, SIZE) == (SIZE[0] - 1.0, 0.0)


def test_preview_is_the_overlay_and_shows_what_is_valid():
    frame = np.random.default_rng(1).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    d = clicks(edit.set_mode(clicks(edit.Draft(SIZE, T), "box", (2, 3), (9, 12)), "path"), "arrow", (5, 7), (30, 20))
    canvas, error = preview(frame, d, 64)
    spec = spec_of(d)
    assert error is None
    assert np.array_equal(
        canvas, overlay_brushes(frame, spec, compile_brushes(spec, max_tracks=64), display_scale(SIZE))
    )
    half = edit.add_brush(d, "path")  # a second brush without a mask or path yet
    canvas, error = preview(frame, half, 64)
    with pytest.raises(WanjaxError) as e:
        load_brushes(edit.brush_file(half))
    assert error == str(e.value) and "brushes[1].path: missing" in error
    assert np.array_equal(canvas, preview(frame, d, 64)[0])  # the valid brush still shows


def test_fit_frame_bounds_and_crops():
    wide = np.zeros((60, 120, 4), np.uint8)
    wide[:, 30:90] = 255  # the centre square survives the crop
    out = fit_frame(wide, (32, 32))
    assert out.shape == (32, 32, 3) and out.min() == 255
    assert fit_frame(np.zeros((32, 32), np.uint8), (32, 32)).shape == (32, 32, 3)
    with pytest.raises(WanjaxError, match=f"at most {MAX_SIDE}"):
        fit_frame(np.zeros((10, MAX_SIDE + 1, 3), np.uint8), (32, 32))
    with pytest.raises(WanjaxError, match="8-bit"):
        fit_frame(np.zeros((8, 8, 3), np.float32), (32, 32))


def test_workdir_keeps_a_bounded_number_and_cleans_up():
    work = Workdir(keep=2)
    made = [work.new("video") for _ in range(4)]
    assert [p.exists() for p in made] == [False, False, True, True]
    work.close()
    assert not work.root.exists()
