"""Long-video consistency metrics, calibrated on Sprites60 clips: does a minute-long video keep its colours, its
sprites and a steady picture across the windows / segments it was generated in?

Videos are uint8 [T, H, W, 3] at `fps` frames per second. Second s covers frames [s·fps, (s+1)·fps), the last one
also the frames left over (961 frames at 16 fps: 60 seconds, the last of 17 frames). A generated video is judged
against nothing but itself, except for the sprite metrics, which use the ground truth of the clip it was started
from (its first frame is given): each sprite's colour and shape, and when it should be in view. They judge what
the sprites look like and how fast they move, never where they are.

* Colour drift: the median CIE-Lab colour (sRGB D65, `srgb_to_lab`; per channel, over the second's pixels) of each
  second, ΔE76 of second s vs second 0. The median, not the mean: sprites moving over a textured background move the
  mean of a 32 px Sprites60 clip with no drift at all (drift_last 0.3-6.0 ΔE, median 1.6, over 30 clips; drift_max
  up to 7.5), the median less (drift_last 0-2.2, median 0.8; drift_max ≤ 3.5).
* Seams and flashes, from d[i] = mean |frame i+1 - frame i| over pixels and channels (grey levels): seam_ratio is
  the mean over boundaries b (a new window starts at frame b) of d[b-1] / median(d); a flash is a pair with d above
  FLASH_K x median(d) and above FLASH_FLOOR: a sudden global change.
* Temporal flickering, VBench's formula (Vchitect/VBench vbench/temporal_flickering.py): (255 - mean(d)) / 255.
* Sprite identity, count and motion: see `sprite_identity`.
"""

import numpy as np
from scipy import ndimage

from wanjax.errors import WanjaxError

# sRGB (IEC 61966-2-1) linear RGB -> XYZ, D65. The white point is its row sums, so sRGB white is exactly L=100, a=b=0.
SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
WHITE = SRGB_TO_XYZ.sum(axis=1)
# A flash: a frame pair whose mean abs difference is FLASH_K times the median pair's and at least FLASH_FLOOR grey
# levels (a still video's uint8 noise has a median near 0, and k x 0 would count every rounding step).
FLASH_K = 4.0
FLASH_FLOOR = 2.0
# seam_ratio's denominator is at least this many grey levels, so a still video with no seam scores 0, not 0 / 0.
MOTION_FLOOR = 0.25
# How much of a pixel is sprite s: its chroma χ (colour minus its grey mean) is c·χ_s, c in [0, 1], give or take
# less than COLOR_DISTANCE (RGB levels) across χ_s. Greys (backgrounds) drop out, so on the ground truth c is the
# sprite's anti-aliased coverage whatever lies behind it. Palette colours 60° of hue apart differ by 100-135 across
# each other's hue.
COLOR_DISTANCE = 50.0
# A sprite's pixels are those with c ≥ 1/2 (on the ground truth, the pixels whose centres lie inside it). It is
# present in a frame when its coverage adds up to MIN_AREA of its shape's area: less than the ground truth's visible
# (half of it uncovered), so that a sprite partly hidden still counts, but not much less, or sprites 30-50 % hidden
# count where the ground truth has them out of view (count_error on 30 clips: 0.04 at 0.4, 0.10 at 0.3).
MIN_AREA = 0.4
# A sprite is one blob of pixels (8-connected), or a few where sprites in front cut it: its pixels count in blobs
# of at least MIN_BLOB of its area, and it is shown only where its largest blob has MIN_CORE of it and that blob's
# centre moved less than the sprite's radius since the frame before. Colour noise that matches a sprite's hue is
# specks, or blobs that jump about: summed over a frame they passed for it (identity 1.0 on noise before).
MIN_BLOB = 0.1
MIN_CORE = 0.15
# A sprite's extent, area / bounding-box area, tells its shape: ideally 1/2 (triangle pointing up), π/4 (disc), 1
# (axis-aligned square). Measured from coverage (sub-pixel) on the whole views of 30 clips at 32 px (3-4.5 px
# sprites), all frames: triangles 0.51-0.65, discs 0.78-0.82, squares 0.89-1.03 (0.999 at the 0.5th percentile).
SHAPE_CUTS = {"triangle": 0.7, "disc": 0.9, "square": np.inf}  # upper ends: triangle < 0.7 ≤ disc < 0.9 ≤ square
# Shape is judged on whole views only: the sprite's pixels off the frame's edges and TOUCH px clear of any other
# sprite's (which may be hiding part of it).
TOUCH = 2
# Reentry: the sprite with the longest run of invisible frames between visible ones, if it lasts this many seconds.
MIN_GAP_SECONDS = 2.0


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE-Lab float64 [..., 3] (L in 0-100) of sRGB colours [..., 3] in 0-255 (uint8 or float): sRGB decoded to
    linear light, to XYZ (D65), then Lab against the D65 white."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = linear @ (SRGB_TO_XYZ / WHITE[:, None]).T
    delta = 6 / 29
    f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def seconds(frames: int, fps: int = 16) -> list[slice]:
    """The frames of each second: [s·fps, (s+1)·fps), the last one running to the end (at least one second)."""
    n = max(frames // fps, 1)
    return [slice(s * fps, frames if s == n - 1 else (s + 1) * fps) for s in range(n)]


def colour_drift(video: np.ndarray, fps: int = 16) -> dict:
    """ΔE76 of each second's median Lab colour vs second 0's.

    video uint8 [T, H, W, 3]. Returns delta_e float64 [n seconds] and floats drift_last (last second vs first),
    drift_max, drift_slope (least-squares ΔE per second through all seconds; NaN for a one-second video).
    """
    lab = np.stack([np.median(srgb_to_lab(video[s]).reshape(-1, 3), axis=0) for s in seconds(len(video), fps)])
    delta_e = np.linalg.norm(lab - lab[0], axis=-1)
    slope = np.polyfit(np.arange(len(delta_e)), delta_e, 1)[0] if len(delta_e) > 1 else np.nan
    return {
        "delta_e": delta_e,
        "drift_last": float(delta_e[-1]),
        "drift_max": float(delta_e.max()),
        "drift_slope": float(slope),
    }


def frame_differences(video: np.ndarray) -> np.ndarray:
    """d float64 [T-1]: mean |frame i+1 - frame i| over pixels and channels, grey levels."""
    d = [np.abs(video[i + 1].astype(np.float32) - video[i].astype(np.float32)).mean() for i in range(len(video) - 1)]
    return np.array(d, np.float64)


def temporal_flickering(video: np.ndarray) -> float:
    """VBench's temporal_flickering score of video uint8 [T, H, W, 3]: (255 - mean(d)) / 255, d from
    `frame_differences`; 1.0 for a still video, NaN for a single frame."""
    d = frame_differences(video)
    return float((255.0 - d.mean()) / 255.0) if len(d) else float("nan")


def seams_and_flashes(video: np.ndarray, boundaries=(), k: float = FLASH_K, floor: float = FLASH_FLOOR) -> dict:
    """Jumps at window boundaries and sudden global changes anywhere.

    video uint8 [T, H, W, 3]; boundaries: frame indices b in 1 … T-1 where a new window / segment starts (the seam
    lies between frames b-1 and b). Returns seam_ratio (mean over boundaries of d[b-1] / max(median d,
    MOTION_FLOOR): ≈ 1 where boundaries look like any other frame pair; NaN without boundaries), flashes (pairs with
    d > max(k · median d, floor)) and median_difference (median d, grey levels).
    """
    d = frame_differences(video)
    b = np.asarray(boundaries, int).reshape(-1)
    if ((b < 1) | (b > len(d))).any():
        raise WanjaxError(f"boundaries={b.tolist()} must be frame indices in 1 … {len(d)} (a window's first frame)")
    median = float(np.median(d)) if len(d) else 0.0
    seam = float(d[b - 1].mean() / max(median, MOTION_FLOOR)) if len(b) else float("nan")
    return {"seam_ratio": seam, "flashes": int((d > max(k * median, floor)).sum()), "median_difference": median}


def sprite_coverage(video: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """float32 [S, T, H, W] in [0, 1]: how much of each pixel of video uint8 [T, H, W, 3] is sprite colour s of
    colors [S, 3]: c = (χ · χ_s) / |χ_s|², clipped, where the pixel's chroma χ is within COLOR_DISTANCE of c·χ_s;
    0 elsewhere. χ is taken relative to the frame's median chroma (0 on a grey background): a colour cast over the
    whole frame is `colour_drift`'s to measure, and left alone it would leak coverage into the background."""
    v = np.asarray(video, np.float32)
    chroma = v - v.mean(axis=-1, keepdims=True)
    chroma -= np.median(chroma.reshape(len(v), -1, 3), axis=1)[:, None, None, :]
    c = np.asarray(colors, np.float32)
    c = c - c.mean(axis=-1, keepdims=True)
    norm2 = (c * c).sum(axis=-1)[:, None, None, None]  # [S, 1, 1, 1]
    along = np.moveaxis(chroma @ c.T, -1, 0) / norm2  # [S, T, H, W]
    across = (chroma * chroma).sum(axis=-1) - along**2 * norm2  # squared distance from the line c·χ_s
    return np.where(across < COLOR_DISTANCE**2, np.clip(along, 0.0, 1.0), 0.0).astype(np.float32)


def _grow(masks: np.ndarray, r: int) -> np.ndarray:
    """bool masks [..., H, W] grown by r px (a (2r+1)² square neighbourhood)."""
    h, w = masks.shape[-2:]
    padded = np.pad(masks, [(0, 0)] * (masks.ndim - 2) + [(r, r), (r, r)])
    rows = np.logical_or.reduce([padded[..., i : i + h, :] for i in range(2 * r + 1)])
    return np.logical_or.reduce([rows[..., j : j + w] for j in range(2 * r + 1)])


def _blobs(masks: np.ndarray, min_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of masks [t, H, W]: the 8-connected components of at least min_size pixels, bool [t, H, W]; each frame's
    largest component's size [t] and centre (x, y) [t, 2] (NaN in an empty frame)."""
    kept, largest, centre = np.zeros_like(masks), np.zeros(len(masks), int), np.full((len(masks), 2), np.nan)
    for i, mask in enumerate(masks):
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        kept[i], largest[i] = (sizes >= min_size)[labels], sizes.max()
        if n:
            y, x = np.nonzero(labels == sizes.argmax())
            centre[i] = x.mean(), y.mean()
    return kept, largest, centre


def _net_speed(points: np.ndarray, frames: np.ndarray, fps: int) -> float:
    """Pixels per second from the first to the last of positions points [n, 2] at frames [n] (NaN if n < 2)."""
    if len(frames) < 2 or frames[-1] == frames[0]:
        return np.nan
    return float(np.linalg.norm(points[-1] - points[0]) / (frames[-1] - frames[0]) * fps)


def _steady(centre: np.ndarray, radius: float) -> np.ndarray:
    """bool [t]: the largest blob's centre [t, 2] is within `radius` of where it was one frame before (the first
    frame: one frame after). Sprites move under a pixel a frame; the biggest speck of colour noise jumps about."""
    step = np.linalg.norm(np.diff(centre, axis=0), axis=-1) <= radius  # NaN (no blob) compares False
    return np.concatenate([step[:1], step]) if len(step) else np.ones(len(centre), bool)


def _on_border(masks: np.ndarray) -> np.ndarray:
    """bool [...]: the mask [..., H, W] has a pixel on the frame's edge."""
    edges = (masks[..., 0, :], masks[..., -1, :], masks[..., :, 0], masks[..., :, -1])
    return np.logical_or.reduce([e.any(axis=-1) for e in edges])


def _shape_area(shape: str, radius: float) -> float:
    """Area of a sprite from its bounding-circle radius: disc, square (circumradius R), equilateral triangle."""
    return {"disc": np.pi, "square": 2.0, "triangle": 3 * np.sqrt(3) / 4}[shape] * radius**2


def _returning_sprite(visible: np.ndarray, min_gap: int) -> tuple[int, int] | None:
    """(sprite, first frame back) of the sprite with the longest invisible stretch between visible frames, if it
    is at least min_gap frames long; None otherwise."""
    best = None
    for s, v in enumerate(visible):
        on = np.flatnonzero(v)
        gaps = np.diff(on) - 1
        if len(gaps) and gaps.max() >= min_gap and (best is None or gaps.max() > best[0]):
            best = (int(gaps.max()), s, int(on[gaps.argmax() + 1]))
    return None if best is None else best[1:]


def sprite_identity(video: np.ndarray, clip: dict, fps: int = 16) -> dict:
    """Whether each sprite keeps its colour and shape, second by second, judged against the clip's ground truth:
    what its sprites look like and when they are in view, not where they are (a frozen first frame keeps them all).

    video uint8 [T, H, W, 3]; clip: `sprites60`' dict, or one with colors uint8 [S, 3], shapes, radii [S] (bounding
    circles, px) and visible bool [S, T] (T frames like the video). In a frame, sprite s's area is its
    `sprite_coverage` summed over its blobs of pixels (c ≥ 1/2; see MIN_BLOB) and those next to them; it is present
    when that reaches MIN_AREA of its shape's area, its largest blob MIN_CORE, and that blob stays put (`_steady`).
    Its extent is that area over the coverage's bounding box (width: the sum over columns of their largest c; height
    likewise), read in whole views only: off the frame's edges and TOUCH px clear of the other sprites' pixels (at
    32 px sprites touch often: 20-87 % of expected pairs are judged, 53 % mean).
    Per second, s is expected when the ground truth has it visible in at least half the second's frames, present
    when present in at least half of them, judged when present with a whole view, and its shape matches when its
    median extent over those views falls in its shape's range (SHAPE_CUTS).

    Returns floats identity (fraction of expected (second, sprite) pairs present with, if judged, a matching shape),
    shape_match (fraction of expected judged pairs whose shape matches), count_error (mean over seconds of
    |present sprites - expected sprites|), reentry_identity (identity over the seconds wholly after the return of
    the sprite whose longest invisible stretch between visible frames lasts MIN_GAP_SECONDS or more; NaN without
    one), motion (the sprites' mean speed, over the present expected pairs, against the ground truth's over the
    expected ones: the net distance a sprite's largest blob moves through its shown frames of the second, and its
    track through its visible ones, in px/s; 1 for the ground truth (0.97-1.01 over 8 eval clips), 0 for a still
    frame, 0.5 for the clip at half speed; NaN for a clip without tracks or whose sprites stand still), and
    per-second arrays expected, present, judged, shape_ok bool [n, S].
    """
    colors = np.asarray(clip["colors"])
    visible = np.asarray(clip["visible"], bool)
    if visible.shape[1] != len(video):
        raise WanjaxError(f"the video has {len(video)} frames but the clip's visible has {visible.shape[1]}")
    radii = np.asarray(clip["radii"], np.float64)
    areas = np.array([_shape_area(s, r) for s, r in zip(clip["shapes"], radii, strict=True)])
    cuts = np.array(list(SHAPE_CUTS.values()))
    own = np.array([list(SHAPE_CUTS).index(s) for s in clip["shapes"]])
    spans = seconds(len(video), fps)
    expected, present, judged, shape_ok = (np.zeros((len(spans), len(colors)), bool) for _ in range(4))
    speed, truth = np.full((2, len(spans), len(colors)), np.nan)
    tracks = np.asarray(clip["tracks"], np.float64) if "tracks" in clip else None
    for i, span in enumerate(spans):
        cover = sprite_coverage(video[span], colors)  # [S, t, H, W]
        inside = cover >= 0.5
        near = _grow(inside, TOUCH)
        half = (span.stop - span.start) / 2
        for s in range(len(colors)):
            blobs, largest, centre = _blobs(inside[s], MIN_BLOB * areas[s])
            soft = np.where(_grow(blobs, 1), cover[s], 0.0)
            area = soft.sum(axis=(1, 2))
            with np.errstate(invalid="ignore", divide="ignore"):
                extent = area / (soft.max(axis=1).sum(axis=1) * soft.max(axis=2).sum(axis=1))
            touching = (inside[s] & np.delete(near, s, axis=0).any(axis=0)).any(axis=(1, 2)) | _on_border(inside[s])
            shown = (area >= MIN_AREA * areas[s]) & (largest >= MIN_CORE * areas[s]) & _steady(centre, radii[s])
            whole = shown & ~touching
            expected[i, s] = visible[s, span].sum() >= half
            present[i, s] = shown.sum() >= half
            judged[i, s] = present[i, s] and whole.any()
            if present[i, s]:
                speed[i, s] = _net_speed(centre[shown], np.flatnonzero(shown), fps)
            if expected[i, s] and tracks is not None:
                seen = np.flatnonzero(visible[s, span])
                truth[i, s] = _net_speed(tracks[s, span][seen], seen, fps)
            if judged[i, s]:
                shape_ok[i, s] = np.searchsorted(cuts, np.median(extent[whole]), "right") == own[s]
    correct = present & (shape_ok | ~judged)
    identity = correct[expected].mean() if expected.any() else np.nan
    shape_match = shape_ok[expected & judged].mean() if (expected & judged).any() else np.nan
    count_error = np.abs(present.sum(axis=1) - expected.sum(axis=1)).mean()
    back = _returning_sprite(visible, round(MIN_GAP_SECONDS * fps))
    reentry = np.nan
    if back is not None:
        s, first = back
        after = np.array([span.start >= first for span in spans]) & expected[:, s]
        reentry = correct[after, s].mean() if after.any() else np.nan
    moving = np.nanmean(truth[expected]) if expected.any() and tracks is not None else np.nan
    judged_speed = (present & expected).any() and moving > 0  # NaN compares False: no tracks, nothing to judge
    motion = np.nanmean(np.where(present, speed, np.nan)[expected]) / moving if judged_speed else np.nan
    return {
        "identity": float(identity),
        "motion": float(motion),
        "shape_match": float(shape_match),
        "count_error": float(count_error),
        "reentry_identity": float(reentry),
        "expected": expected,
        "present": present,
        "judged": judged,
        "shape_ok": shape_ok,
    }


def evaluate_long(video: np.ndarray, clip: dict | None = None, boundaries=(), fps: int = 16) -> dict:
    """All long-video metrics of one video uint8 [T, H, W, 3], as plain floats and ints (json.dumps-able; NaN where
    a metric does not apply): drift_last, drift_max (ΔE76), drift_slope (ΔE per second), seam_ratio, flashes,
    median_difference, temporal_flickering, and, given the Sprites60 clip it was started from, identity,
    shape_match, count_error, reentry_identity, motion (NaN without a clip). boundaries: first frames of its windows."""
    drift = colour_drift(video, fps)
    out = {key: drift[key] for key in ("drift_last", "drift_max", "drift_slope")}
    out |= seams_and_flashes(video, boundaries)
    out["temporal_flickering"] = temporal_flickering(video)
    keys = ("identity", "shape_match", "count_error", "reentry_identity", "motion")
    sprites = sprite_identity(video, clip, fps) if clip is not None else dict.fromkeys(keys, float("nan"))
    return out | {key: sprites[key] for key in keys}
