"""Brush files: the DESIGN.md example loads from a dict, JSON text or a path; masks rasterise at pixel centres;
every malformed file fails with a message that names the brush, the field, the value and a fix."""

import copy
import json

import numpy as np
import pytest

from wanjax.errors import WanjaxError
from wanjax.motion import load_brushes, mask_pixels

# DESIGN.md's example; its rle gets the final background run so that the counts cover all 64·64 pixels.
EXAMPLE = {
    "version": 1,
    "size": [64, 64],
    "frames": 17,
    "brushes": [
        {
            "mode": "path",
            "mask": {"box": [10, 12, 18, 20]},
            "path": [[14, 16], [30, 16], [40, 28]],
            "easing": "linear",
            "strength": 1.0,
        },
        {
            "mode": "sway",
            "mask": {"polygon": [[0, 30], [20, 30], [20, 63], [0, 63]]},
            "direction": [1, 0],
            "amplitude": 3.0,
            "period": 16,
            "phase": 0.0,
            "anchor": "bottom",
        },
        {"mode": "flow", "mask": {"circle": [48, 48, 10]}, "direction": [0, 1], "speed": 1.5},
        {"mode": "static", "mask": {"rle": {"size": [64, 64], "counts": [0, 5, 59, 5, 4027]}}},
        {"mode": "camera", "pan": [0.5, 0.0], "zoom": 1.0},
    ],
}


def test_example_loads_from_dict_text_and_path(tmp_path):
    path = tmp_path / "brushes.json"
    path.write_text(json.dumps(EXAMPLE, indent=1))
    spec = load_brushes(EXAMPLE)
    assert load_brushes(json.dumps(EXAMPLE)) == spec and load_brushes(path) == spec and load_brushes(str(path)) == spec
    assert load_brushes(spec) == spec and json.loads(json.dumps(spec)) == spec  # idempotent, plain JSON
    path_brush, sway, flow, static, camera = spec["brushes"]
    assert path_brush == EXAMPLE["brushes"][0] | {"density": 1.0}
    assert sway["period"] == 16.0 and sway["anchor"] == "bottom" and flow["strength"] == 1.0
    assert static == {"mode": "static", "mask": EXAMPLE["brushes"][3]["mask"], "density": 1.0, "strength": 1.0}
    assert camera == {"mode": "camera", "pan": [0.5, 0.0], "zoom": 1.0, "density": 1.0}
    assert load_brushes(EXAMPLE, size=(64, 64), frames=17) == spec


def test_defaults_filled_in():
    brushes = [
        {"mode": "path", "mask": {"circle": [5, 5, 2]}, "path": [[5, 5], [9, 9]], "name": "ball"},
        {"mode": "path", "mask": {"circle": [5, 5, 2]}, "path": [[5, 5], [9, 9]], "speed": 0.5},
        {"mode": "sway", "mask": {"box": [0, 0, 3, 3]}, "direction": [0, 2], "amplitude": 1, "period": 8},
        {"mode": "camera"},
    ]
    a, b, c, d = load_brushes({"version": 1, "size": [16, 16], "frames": 5, "brushes": brushes})["brushes"]
    assert (a["easing"], a["name"], a["strength"], a["density"]) == ("linear", "ball", 1.0, 1.0)
    assert b["speed"] == 0.5 and "easing" not in b
    assert (c["phase"], c["anchor"]) == (0.0, "none")
    assert d == {"mode": "camera", "pan": [0.0, 0.0], "zoom": 1.0, "density": 1.0}


def _file(*brushes, **top) -> dict:
    return {"version": 1, "size": [64, 64], "frames": 17, "brushes": list(brushes)} | top


BOX = {"box": [10, 10, 20, 20]}
STATIC = {"mode": "static", "mask": BOX}
SWAY = {"mode": "sway", "mask": BOX, "direction": [1, 0], "amplitude": 2.0, "period": 8}
PATH = {"mode": "path", "mask": BOX, "path": [[15, 15], [30, 15]]}
CAMERA = {"mode": "camera", "pan": [0.5, 0]}


def _rle(counts):
    return {"mode": "static", "mask": {"rle": {"size": [64, 64], "counts": counts}}}


MALFORMED = {
    "bad json": (
        '{"version": 1,\n "size": [64, 64],,\n}',
        r"invalid JSON at line 2, column 19: Expecting property name",
    ),
    "top-level list": ("[1, 2]", r"top level: expected an object, got \[1, 2\]"),
    "no version": ({"size": [64, 64], "frames": 17, "brushes": []}, r"version: missing; add \"version\": 1"),
    "version 2": (_file(version=2), r"version: got 2; this wanjax reads version 1"),
    "unknown top key": (_file(fps=16), r"fps: unknown field; the fields here are version, size, frames, brushes"),
    "frames not 4k+1": (_file(frames=16), r"frames=16 is not 4k\+1; use 13 or 17"),
    "size one value": (_file(size=[64]), r"size: expected 2 values, got 1"),
    "too many brushes": (_file(*[STATIC] * 65), r"brushes: 65 brushes; use at most 64"),
    "brush not object": (_file(STATIC, 3), r"brushes\[1\]: expected a brush object, got 3"),
    "unknown brush field": (_file(STATIC | {"colour": "red"}), r"brushes\[0\]\.colour: unknown field.*mode, mask"),
    "unknown mode": (_file(STATIC, {"mode": "spin", "mask": BOX}), r"brushes\[1\]\.mode: got 'spin'; use one of path"),
    "no mode": (_file({"mask": BOX}), r"brushes\[0\]\.mode: missing; add one of path, sway, flow, static, camera"),
    "no period": (_file({k: v for k, v in SWAY.items() if k != "period"}), r"brushes\[0\]\.period: missing.*needs"),
    "no mask": (_file(STATIC, {"mode": "static"}), r"brushes\[1\]\.mask: missing; a static brush needs mask"),
    "camera mask": (_file(STATIC, CAMERA | {"mask": BOX}), r"brushes\[1\]\.mask: unknown field.*mode, pan, zoom"),
    "string number": (_file(SWAY | {"amplitude": "3"}), r"brushes\[0\]\.amplitude: expected a number, got '3'"),
    "bool number": (_file(SWAY | {"period": True}), r"brushes\[0\]\.period: expected a number, got True"),
    "nan strength": (
        json.dumps(_file(STATIC, STATIC | {"strength": float("nan")})),
        r"brushes\[1\]\.strength: got nan; use a finite number",
    ),
    "inf path": (_file(PATH | {"path": [[15, 15], [float("inf"), 3]]}), r"brushes\[0\]\.path\[1\]\[0\]: got inf"),
    "path off frame": (
        _file(PATH | {"path": [[15, 15], [70, 15]]}),
        r"brushes\[0\]\.path\[1\]: point \[70, 15\] is out",
    ),
    "one path point": (_file(PATH | {"path": [[15, 15]]}), r"brushes\[0\]\.path: expected at least 2 values, got 1"),
    "empty box": (
        _file(STATIC, {"mode": "static", "mask": {"box": [10.2, 10.2, 10.8, 10.8]}}),
        r"brushes\[1\]\.mask\.box: \[10\.2, 10\.2, 10\.8, 10\.8\] contains no pixel centre; make it larger",
    ),
    "mask off frame": (
        _file({"mode": "static", "mask": {"circle": [100, 100, 5]}}),
        r"brushes\[0\]\.mask\.circle: \[100\.0, 100\.0, 5\.0\] lies entirely outside the 64x64 frame",
    ),
    "inverted box": (_file({"mode": "static", "mask": {"box": [20, 10, 10, 20]}}), r"mask\.box: got .*x0 < x1"),
    "two shapes": (_file({"mode": "static", "mask": BOX | {"circle": [5, 5, 2]}}), r"\]\.mask: has 2 shapes \(box"),
    "unknown shape": (_file({"mode": "static", "mask": {"ellipse": [1]}}), r"brushes\[0\]\.mask\.ellipse: unknown"),
    "negative radius": (
        _file({"mode": "static", "mask": {"circle": [5, 5, -1]}}),
        r"brushes\[0\]\.mask\.circle\[2\]: radius -1; use a radius > 0",
    ),
    "degenerate polygon": (
        _file({"mode": "static", "mask": {"polygon": [[1, 1], [9, 9], [1, 1]]}}),
        r"brushes\[0\]\.mask\.polygon: has fewer than 3 distinct points",
    ),
    "rle wrong sum": (
        _file(STATIC, STATIC, _rle([0, 5, 59, 5])),
        r"brushes\[2\]\.mask\.rle\.counts: the runs sum to 69",
    ),
    "rle negative run": (_file(_rle([0, -5, 4101])), r"brushes\[0\]\.mask\.rle\.counts\[1\]: got -5; use an integer"),
    "rle wrong size": (
        _file({"mode": "static", "mask": {"rle": {"size": [32, 32], "counts": [1024]}}}),
        r"brushes\[0\]\.mask\.rle\.size: got \[32, 32\], but the frame is 64x64; use \[64, 64\]",
    ),
    "zero direction": (_file(SWAY | {"direction": [0, 0]}), r"brushes\[0\]\.direction: got \[0, 0\].*nonzero"),
    "two cameras": (
        _file(STATIC, CAMERA, CAMERA),
        r"brushes\[2\]\.mode: a second camera \(the first is brushes\[1\]\)",
    ),
    "easing and speed": (_file(PATH | {"easing": "linear", "speed": 1}), r"brushes\[0\]\.speed: given together"),
    "unknown easing": (_file(PATH | {"easing": "bounce"}), r"brushes\[0\]\.easing: got 'bounce'; use one of linear"),
    "unknown anchor": (_file(SWAY | {"anchor": "middle"}), r"brushes\[0\]\.anchor: got 'middle'; use one of none"),
    "zero density": (_file(STATIC | {"density": 0}), r"brushes\[0\]\.density: got 0; use a number > 0"),
    "zero period": (_file(SWAY | {"period": 0}), r"brushes\[0\]\.period: got 0; use a number > 0"),
    "negative speed": (
        _file({"mode": "flow", "mask": BOX, "direction": [1, 0], "speed": -1}),
        r"brushes\[0\]\.speed: got -1; use a number ≥ 0",
    ),
    "zero zoom": (_file(CAMERA | {"zoom": 0}), r"brushes\[0\]\.zoom: got 0; use a number > 0"),
    "pan not a list": (_file(CAMERA | {"pan": 0.5}), r"brushes\[0\]\.pan: expected a list, got 0\.5"),
    "name not text": (_file(STATIC | {"name": 7}), r"brushes\[0\]\.name: expected text, got 7"),
}


@pytest.mark.parametrize("src, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_brush_files_name_the_problem(src, message):
    with pytest.raises(WanjaxError, match=message):
        load_brushes(copy.deepcopy(src))


def test_missing_file_and_mismatched_size_or_frames(tmp_path):
    with pytest.raises(WanjaxError, match=r"brush file '.*nope\.json' not found; pass an existing \.json path"):
        load_brushes(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "brushes": [}')
    with pytest.raises(WanjaxError, match=r"brush file '.*bad\.json': invalid JSON at line 1, column 28"):
        load_brushes(bad)
    with pytest.raises(WanjaxError, match=r"size: .* on a 64x64 image but the image is 32x48; redraw them for size"):
        load_brushes(EXAMPLE, size=(32, 48))
    with pytest.raises(WanjaxError, match=r"frames: the brush file has frames 17 but the video has 81; set \"frames\""):
        load_brushes(EXAMPLE, frames=81)


def test_mask_pixels_at_pixel_centres():
    box = mask_pixels({"box": [1, 2, 3, 4.5]}, (6, 7))  # inclusive: columns 1-3, rows 2-4
    assert box.shape == (7, 6) and np.array_equal(np.argwhere(box).min(0), [2, 1]) and box.sum() == 9
    circle = mask_pixels({"circle": [2, 3, 1]}, (5, 6))  # the centre and its 4 neighbours at distance 1
    assert np.array_equal(np.argwhere(circle), [[2, 2], [3, 1], [3, 2], [3, 3], [4, 2]])
    triangle = mask_pixels({"polygon": [[0, 0], [8, 0], [0, 8]]}, (10, 10))
    yy, xx = np.mgrid[:10, :10]
    assert np.array_equal(triangle, (xx + yy < 8) & (xx < 8) & (yy < 8))  # points on the hypotenuse: half-open
    angles = np.pi / 2 + 4 * np.pi * np.arange(5) / 5  # a pentagram: even-odd leaves its centre out
    star = mask_pixels({"polygon": (np.stack([np.cos(angles), np.sin(angles)], -1) * 20 + 25).tolist()}, (51, 51))
    assert not star[25, 25] and star[25 + 14, 25] and not star[25 - 19, 25 + 19]


def test_mask_pixels_rle_is_column_major_background_first():
    # H=3, W=4: one background pixel, 2 foreground, 3 background, 6 foreground, down the columns.
    decoded = mask_pixels({"rle": {"size": [3, 4], "counts": [1, 2, 3, 6]}}, (4, 3))
    assert np.array_equal(decoded, [[0, 0, 1, 1], [1, 0, 1, 1], [1, 0, 1, 1]])
    mask = np.random.default_rng(0).random((9, 7)) < 0.4
    flat = mask.ravel(order="F")
    edges = np.flatnonzero(np.diff(flat.astype(int))) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    counts = [0, *counts] if flat[0] else counts
    assert np.array_equal(mask_pixels({"rle": {"size": [9, 7], "counts": counts}}, (7, 9)), mask)
