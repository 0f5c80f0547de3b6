"""Brush overlays: files written whole, marks where the brushes are, in their mode's colour, the picture untouched
elsewhere; video overlays with a dot on every visible track."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from wanjax.data.sprites import brush_sprites
from wanjax.errors import WanjaxError
from wanjax.motion import KINDS, Tracks, compile_brushes, mask_pixels
from wanjax.motion.draw import COLORS, overlay_brushes, overlay_video, save_overlays

EXAMPLES = Path(__file__).parents[2] / "examples"
SCALE = 4


@pytest.fixture(scope="module")
def willow():
    brushes = json.loads((EXAMPLES / "willow.json").read_text())
    return iio.imread(EXAMPLES / "willow.png"), brushes, compile_brushes(str(EXAMPLES / "willow.json"))


@pytest.fixture(scope="module")
def clip():
    clip = brush_sprites(3)
    return clip["video"], clip["brushes"], compile_brushes(clip["brushes"])


def _up(a: np.ndarray, rgb: bool = True) -> np.ndarray:
    """Images [..., H, W, 3] (or masks [..., H, W] with rgb=False) nearest-upscaled by SCALE."""
    axis = -3 if rgb else -2
    return np.repeat(np.repeat(a, SCALE, axis=axis), SCALE, axis=axis + 1)


def _grow(mask: np.ndarray, r: int) -> np.ndarray:
    """bool [H, W] dilated by a (2r+1)² square."""
    p = np.pad(mask, r)
    h, w = mask.shape
    return np.any([p[dy : dy + h, dx : dx + w] for dy in range(2 * r + 1) for dx in range(2 * r + 1)], axis=0)


def _marked(brushes: dict, tracks: Tracks, frames: slice = slice(None)) -> np.ndarray:
    """bool [H, W]: every mask pixel and every pixel a valid visible track passes through in `frames`."""
    w, h = brushes["size"]
    out = np.zeros((h, w), bool)
    for b in brushes["brushes"]:
        if "mask" in b:
            out |= mask_pixels(b["mask"], (w, h))
    valid = np.asarray(tracks.valid)
    xy, vis = np.asarray(tracks.xy)[valid, frames], np.asarray(tracks.visible)[valid, frames]
    x, y = np.round(xy[vis]).astype(int).T
    keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    out[y[keep], x[keep]] = True
    return out


def _at(xy) -> tuple[int, int]:
    """Output (row, column) of the pixel under source point (x, y)."""
    return int((xy[1] + 0.5) * SCALE), int((xy[0] + 0.5) * SCALE)


def test_willow_overlay_png_marks_masks_and_leaves_the_rest(willow, tmp_path):
    image, brushes, tracks = willow
    paths = save_overlays(tmp_path, image, brushes, tracks, name="willow")
    assert set(paths) == {"png"} and paths["png"] == tmp_path / "willow_overlay.png"
    out, plain = iio.imread(paths["png"]), _up(image)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert np.array_equal(out, overlay_brushes(image, brushes, tracks))
    changed = (out != plain).any(-1)
    for b in brushes["brushes"]:
        assert changed[_up(mask_pixels(b["mask"], (64, 64)), rgb=False)].mean() == 1.0, b["mode"]
    # Three source pixels clear of every mask and track, nothing is drawn: marks stay inside their masks.
    far = _up(~_grow(_marked(brushes, tracks), 3), rgb=False)
    assert far.mean() > 0.15 and not changed[far].any()
    for x, y in ((1, 1), (62, 1), (1, 62), (20, 58)):  # sky corners, ground below the left branches
        assert np.array_equal(out[_at((x, y))], plain[_at((x, y))])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_arrows_have_their_mode_colour(willow, clip):
    image, brushes, tracks = willow
    out = overlay_brushes(image, brushes, tracks)
    sways = [b for b in brushes["brushes"] if b["mode"] == "sway"]
    assert len(sways) == 2
    for b in sways:  # the double arrow is centred on the mask's centroid
        ys, xs = np.nonzero(mask_pixels(b["mask"], (64, 64)))
        assert tuple(out[_at((xs.mean(), ys.mean()))]) == COLORS["sway"]
    # One path brush alone: its shaft, a pixel along the first segment, is in the path colour.
    video, spec, _ = clip
    path = next(b for b in spec["brushes"] if b["mode"] == "path")
    alone = spec | {"brushes": [path]}
    out = overlay_brushes(video[0], alone, compile_brushes(alone))
    p = np.asarray(path["path"], np.float64)
    u = (p[1] - p[0]) / np.linalg.norm(p[1] - p[0])
    assert np.linalg.norm(p[1] - p[0]) > 2
    assert tuple(out[_at(p[0] + u)]) == COLORS["path"]


def test_overlay_video_dots_on_visible_tracks_and_files(clip, tmp_path):
    video, brushes, tracks = clip
    out = overlay_video(video, tracks)
    assert out.shape == (17, 256, 256, 3) and out.dtype == np.uint8
    valid = np.asarray(tracks.valid)
    xy, vis, kind = np.asarray(tracks.xy)[valid], np.asarray(tracks.visible)[valid], np.asarray(tracks.kind)[valid]
    hits = [
        tuple(out[f][_at(xy[p, f])]) == COLORS[KINDS[kind[p]]] for f in (0, 8, 16) for p in np.flatnonzero(vis[:, f])
    ]
    assert len(hits) > 10 and np.mean(hits) > 0.8  # the rest are dots under a later-drawn mark of another mode
    # Tails: where a moving point was 2 frames ago is drawn over; 6 frames ago (past tail=4) mostly is not.
    plain = _up(video)
    moved = [
        (f, p)
        for f in (8, 16)
        for p in np.flatnonzero(vis[:, f - 6] & vis[:, f])
        if np.linalg.norm(xy[p, f] - xy[p, f - 2]) > 2
    ]
    recent = [(out[f][_at(xy[p, f - 2])] != plain[f][_at(xy[p, f - 2])]).any() for f, p in moved]
    old = [(out[f][_at(xy[p, f - 6])] != plain[f][_at(xy[p, f - 6])]).any() for f, p in moved]
    assert len(moved) > 10 and np.mean(recent) > 0.9 and np.mean(old) < 0.3
    for f in (0, 8, 16):  # nothing far from the tracks' recent positions
        far = _up(~_grow(_marked(brushes | {"brushes": []}, tracks, slice(max(0, f - 4), f + 1)), 2), rgb=False)
        assert far.mean() > 0.3 and np.array_equal(out[f][far], _up(video[f])[far])
    paths = save_overlays(tmp_path, video[0], brushes, tracks, video=video, name="clip")
    assert {k: v.name for k, v in paths.items()} == {
        "png": "clip_overlay.png",
        "gif": "clip_overlay.gif",
        "mp4": "clip_overlay.mp4",
    }
    assert iio.imread(paths["png"]).shape == (256, 256, 3)
    assert iio.imread(paths["gif"]).shape == (17, 256, 256, 3)
    assert iio.imread(paths["mp4"]).shape == (17, 256, 256, 3)


def test_willow_video_overlay_files_have_every_frame(willow, tmp_path):
    image, brushes, tracks = willow
    still = np.repeat(image[None], tracks.frames, axis=0)
    paths = save_overlays(tmp_path, image, brushes, tracks, video=still)
    gif, mp4 = iio.imread(paths["gif"]), iio.imread(paths["mp4"])
    assert gif.shape == mp4.shape == (17, 256, 256, 3)
    # GIF quantises each frame to a palette: close to the overlay, not equal.
    assert np.abs(gif[0].astype(int) - overlay_video(still, tracks)[0]).mean() < 8


def test_mismatched_inputs_are_errors(willow):
    image, brushes, tracks = willow
    with pytest.raises(WanjaxError, match=r"\[64, 64, 3\]"):
        overlay_brushes(image[:32], brushes, tracks)
    with pytest.raises(WanjaxError, match=r"\[17, 64, 64, 3\]"):
        overlay_video(np.repeat(image[None], 5, axis=0), tracks)
    with pytest.raises(WanjaxError, match="frames"):  # brushes and tracks from different files
        overlay_brushes(image, brushes | {"frames": 9}, tracks)
    with pytest.raises(WanjaxError, match="scale"):
        overlay_brushes(image, brushes, tracks, scale=0)
