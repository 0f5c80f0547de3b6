"""The `tracks` brush mode: explicit trajectories, validated like the other modes, compiled, drawn."""

import math

import numpy as np
import pytest

from wanjax.errors import WanjaxError
from wanjax.motion import KINDS, compile_brushes, load_brushes
from wanjax.motion.draw import COLORS, overlay_brushes, overlay_video

T = 5


def _file(**brush) -> dict:
    points = [[[10.0 + f, 12.0] for f in range(T)], [[40.0, 30.0 - 2 * f] for f in range(T)]]
    return {"version": 1, "size": [64, 48], "frames": T, "brushes": [{"mode": "tracks", "points": points} | brush]}


def test_tracks_compile_to_their_trajectories():
    """Points as given (strength scales the displacement), visible as given and while in frame, kind path by default
    (or the brush's kind), unmoved by the camera; more points than max_tracks: a spread share."""
    spec = _file(visible=[[True] * T, [True, True, False, True, True]], strength=2.0)
    spec["brushes"].append({"mode": "camera", "pan": [1.0, 0.0]})
    tracks = compile_brushes(spec, max_tracks=64)
    mine = tracks.brush_id == 0
    assert mine.sum() == 2 and (tracks.brush_id[tracks.valid & ~mine] == 1).all()  # the camera moves the rest
    xy = tracks.xy[mine][np.argsort(tracks.xy[mine, 0, 0])]
    np.testing.assert_allclose(xy[0, :, 0], 10 + 2 * np.arange(T))
    np.testing.assert_allclose(xy[1, :, 1], 30 - 4 * np.arange(T))
    assert tracks.visible[mine].sum() == 2 * T - 1 and (tracks.kind[mine] == KINDS.index("path")).all()
    camera = compile_brushes(_file(kind="camera", points=[[[62.0, 5.0], [63.0, 5.0], [64.0, 5.0], [65, 5], [66, 5]]]))
    assert camera.kind[0] == KINDS.index("camera") and camera.visible[0].tolist() == [True, True, False, False, False]

    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 47, (300, 2))
    many = _file(points=np.repeat(starts[:, None], T, axis=1).tolist())
    picked = compile_brushes(many, max_tracks=16).xy[:, 0]
    gaps = np.linalg.norm(picked[:, None] - picked[None], axis=-1) + np.eye(16) * 99
    assert gaps.min() > 6.0  # spread out: 16 random points of a 48 x 48 square come within ~2 px of each other


@pytest.mark.parametrize(
    "change, message",
    [
        ({"points": []}, r"brushes\[0\]\.points: expected at least 1 values"),
        (
            {"points": [[[1, 2]] * (T - 1)]},
            rf"brushes\[0\]\.points\[0\]: has {T - 1} positions but the clip has {T} frames",
        ),
        ({"points": [[[1, 2]] * T, [[1, 2, 3]] * T]}, r"brushes\[0\]\.points\[1\]\[0\]: expected 2 values"),
        ({"points": [[[1, 2]] * (T - 1) + [[1, math.nan]]]}, r"points\[0\]\[4\]\[1\]: got nan; use a finite number"),
        ({"points": [[[1, 2]] * (T - 1) + [[1, "x"]]]}, r"points\[0\]\[4\]\[1\]: expected a number, got 'x'"),
        ({"points": [[[70, 2]] * T]}, r"points\[0\]\[0\]: point \[70, 2\] is outside the 64x48 frame"),
        ({"visible": [[True] * T]}, r"brushes\[0\]\.visible: expected 2 values, got 1"),
        ({"visible": [[True] * T, [True] * (T + 1)]}, rf"visible\[1\]: expected {T} values, got {T + 1}"),
        ({"visible": [[True] * T, [True, 1, True, True, True]]}, r"visible\[1\]\[1\]: expected true or false, got 1"),
        ({"visible": [[True] * T, [False] + [True] * (T - 1)]}, r"visible\[1\]\[0\]: is false; a trajectory must be"),
        ({"kind": "tracks"}, r"brushes\[0\]\.kind: got 'tracks'; use one of path, sway, flow, static, camera"),
        ({"mask": {"box": [0, 0, 4, 4]}}, r"brushes\[0\]\.mask: unknown field; the fields here are mode, points"),
        ({"strength": math.inf}, r"brushes\[0\]\.strength: got inf; use a finite number"),
    ],
)
def test_tracks_errors_name_the_field_and_the_fix(change, message):
    with pytest.raises(WanjaxError, match=message) as e:
        load_brushes(_file() | {"brushes": [_file()["brushes"][0] | change]})
    assert "\n" not in str(e.value) and str(e.value).startswith("brush file: brushes[0]")


def test_tracks_frame_count_and_missing_points():
    with pytest.raises(WanjaxError, match=r"brushes\[0\]\.points: missing; a tracks brush needs points"):
        load_brushes({"version": 1, "size": [8, 8], "frames": 5, "brushes": [{"mode": "tracks"}]})
    with pytest.raises(WanjaxError, match=r"frames: the brush file has frames 5 but the video has 9"):
        load_brushes(_file(), frames=9)
    spec = _file() | {"frames": 9}  # the file says 9 frames, its trajectories have 5 positions
    with pytest.raises(WanjaxError, match=r"points\[0\]: has 5 positions but the clip has 9 frames"):
        load_brushes(spec)


def test_tracks_are_drawn():
    """The still overlay draws a tracks brush's trajectories and arrows in its colour; the video overlay its dots."""
    spec = _file()
    tracks = compile_brushes(spec, max_tracks=8)
    image = np.full((48, 64, 3), 90, np.uint8)
    still = overlay_brushes(image, spec, tracks, scale=4)
    colour = np.all(still == COLORS["tracks"], axis=-1)
    assert colour[4 * 12 : 4 * 13 + 2, 4 * 10 : 4 * 14].any() and colour[4 * 22 : 4 * 31, 4 * 40 : 4 * 41 + 2].any()
    assert not colour[: 4 * 8].any()  # nothing far from the trajectories
    frames = overlay_video(np.repeat(image[None], T, axis=0), tracks, scale=4, brushes=spec)
    assert np.all(frames[-1, 4 * 22 + 2, 4 * 40 + 2] == COLORS["tracks"])  # the second point at its last position
