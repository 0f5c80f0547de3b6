"""Motion brushes -> point tracks with static shapes: xy [P, T, 2], visible [P, T], valid / brush_id / kind [P].

Each masked brush seeds points on a grid inside its mask (about density / spacing² per px²; at least one), the
camera brush on the pixels no other mask covers; all are moved by their brush's formula, then by the camera:

    path    p + strength · (P(s(f)) - path[0]), P(s) the point at arc length s along the polyline,
            s(f) = ease(f / (T-1)) · L or min(speed · f, L)                                   (`path_offsets`)
    sway    p + strength · g(p) · amplitude · (sin(2π f / period + phase) - sin(phase)) · d/|d|  (`sway_offsets`),
            g = 1 for anchor none, else rising linearly from 0 at the anchor edge of the mask's bounding box (pixel
            centres) to 1 at the opposite edge
    flow    p + f · strength · speed · d/|d|, its coordinate along d wrapping within the mask's extent along d
            (points leaving downstream respawn upstream); visible only while its nearest pixel is in the mask
    static  p
    camera  every point of every other brush: c + zoom^f · (p_f - c) + f · pan, c = ((W-1)/2, (H-1)/2) the frame
            centre
    tracks  the given trajectories q [T, 2] (the camera does not move them): q_0 + strength · (q_f - q_0), visible
            where the file says; when they do not all fit, a spatially spread share (`spread_order`); kind: the
            brush's `kind` (default path)
A point is visible only while inside the frame (its nearest pixel exists). Coordinates as in `brush.py`.
"""

import dataclasses
import math
import numbers
from pathlib import Path

import numpy as np

from wanjax.errors import WanjaxError
from wanjax.motion.brush import EASINGS, MODES, TRACKS, load_brushes, mask_pixels

KINDS = MODES  # a track's kind is its brush's mode; a tracks brush's, its `kind` field


def ease(u: np.ndarray, easing: str) -> np.ndarray:
    """Fraction of a path's arc length covered at clip fraction u in [0, 1]: linear u, ease-in-out (1 - cos πu)/2,
    ease-in 1 - cos(πu/2), ease-out sin(πu/2)."""
    if easing == "linear":
        return u
    if easing == "ease-in-out":
        return (1.0 - np.cos(np.pi * u)) / 2.0
    if easing == "ease-in":
        return 1.0 - np.cos(np.pi * u / 2.0)
    if easing == "ease-out":
        return np.sin(np.pi * u / 2.0)
    raise WanjaxError(f"easing={easing!r} is not one of {', '.join(EASINGS)}")


def path_offsets(
    path: list, frames: int, easing: str = "linear", strength: float = 1.0, speed: float | None = None
) -> np.ndarray:
    """Displacement [T, 2] of a `path` brush: strength · (P(s(f)) - path[0]), where P(s) is the point at arc length s
    along the polyline `path` [K, 2] of total length L and s(f) = ease(f / (T-1)) · L, or min(speed · f, L) when a
    speed (px/frame) is given."""
    p = np.asarray(path, np.float64)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    f = np.arange(frames)
    s = ease(f / max(frames - 1, 1), easing) * cum[-1] if speed is None else np.minimum(speed * f, cum[-1])
    xy = np.stack([np.interp(s, cum, p[:, 0]), np.interp(s, cum, p[:, 1])], axis=-1)
    return strength * (xy - p[0])


def sway_offsets(direction: list, amplitude: float, period: float, phase: float, frames: int) -> np.ndarray:
    """Displacement [T, 2] of a rigid `sway` brush: amplitude · (sin(2π f / period + phase) - sin(phase)) · d / |d|.
    Generated phases are 0 or π, where sin(phase) = 0 and this is DESIGN.md's amplitude · sin(2π f / period + phase)."""
    d = np.asarray(direction, np.float64)
    wave = np.sin(2 * np.pi * np.arange(frames) / period + phase) - np.sin(phase)
    return amplitude * wave[:, None] * (d / np.linalg.norm(d))


def camera_offsets(pan: list, frames: int) -> np.ndarray:
    """Displacement [T, 2] that a `camera` brush's pan adds to every point: f · pan."""
    return np.arange(frames)[:, None] * np.asarray(pan, np.float64)


@dataclasses.dataclass(frozen=True, eq=False)
class Tracks:
    """Point tracks of one brush file, padded to P = max_tracks rows (padding: valid and visible False, xy 0,
    brush_id and kind -1).

    xy float32 [P, T, 2] (x, y in pixels); visible bool [P, T]; valid bool [P]; brush_id int32 [P] (index into the
    file's brushes); kind int32 [P] (index into KINDS); size (W, H); frames T.
    """

    xy: np.ndarray
    visible: np.ndarray
    valid: np.ndarray
    brush_id: np.ndarray
    kind: np.ndarray
    size: tuple[int, int]
    frames: int


def _nearest(xy: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest pixel (row i, column j) of points xy [..., 2] and whether it exists (the point is in frame)."""
    j, i = (np.floor(xy[..., k] + 0.5).astype(np.int64) for k in (0, 1))
    inside = (j >= 0) & (j < size[0]) & (i >= 0) & (i < size[1])
    return np.where(inside, i, 0), np.where(inside, j, 0), inside


def _seeds(region: np.ndarray, step: float) -> np.ndarray:
    """Seed points [n ≥ 1, 2] (pixel centres x, y) of a non-empty region bool [H, W]: those on a grid of `step` px
    (≥ 1) centred in the region's bounding box, ordered coarse to fine (grid points whose indices are multiples of
    larger powers of two come first, so any prefix is spread out); if none, the pixel nearest the centroid."""
    rows, cols = np.nonzero(region)
    lo, hi = np.array([cols.min(), rows.min()]), np.array([cols.max(), rows.max()])
    step = max(step, 1.0)
    count = ((hi - lo) // step).astype(np.int64) + 1
    start = (lo + hi - (count - 1) * step) / 2
    gy, gx = (g.ravel() for g in np.mgrid[: count[1], : count[0]])
    x, y = (np.floor(s + g * step + 0.5).astype(np.int64) for s, g in zip(start, (gx, gy), strict=True))
    level = np.bitwise_or(gx, gy)
    level = np.where(level == 0, np.iinfo(np.int64).max, level & -level)  # largest power of two dividing both
    order = np.argsort(-level, kind="stable")
    x, y = x[order], y[order]
    keep = region[y, x]
    if not keep.any():
        nearest = np.argmin((cols - cols.mean()) ** 2 + (rows - rows.mean()) ** 2)
        return np.array([[cols[nearest], rows[nearest]]], np.float64)
    return np.stack([x[keep], y[keep]], axis=-1).astype(np.float64)


def spread_order(points: np.ndarray) -> np.ndarray:
    """Indices ordering points [n, 2] so that every prefix is spread out: greedy farthest-point order, starting at the
    point nearest their mean (deterministic; ties to the lower index)."""
    n = len(points)
    order = np.zeros(n, np.int64)
    if n == 0:
        return order
    order[0] = np.argmin(np.square(points - points.mean(axis=0)).sum(-1))
    gap = np.square(points - points[order[0]]).sum(-1)
    for k in range(1, n):
        order[k] = np.argmax(gap)
        gap = np.minimum(gap, np.square(points - points[order[k]]).sum(-1))
    return order


def _trajectories(brush: dict, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A tracks brush's points [n, T, 2] (strength applied) and visible [n, T], in `spread_order` of their starts."""
    xy = np.asarray(brush["points"], np.float64)
    xy = xy[:, :1] + brush["strength"] * (xy - xy[:, :1])
    visible = np.asarray(brush["visible"], bool) if "visible" in brush else np.ones(xy.shape[:2], bool)
    order = spread_order(xy[:, 0])
    return xy[order], visible[order]


def _quotas(counts: np.ndarray, limit: int) -> np.ndarray:
    """Points kept per region [B] (at most `limit` in all): every point if they fit, else 1 each plus shares of the
    rest proportional to the counts (largest remainders first)."""
    if counts.sum() <= limit:
        return counts
    share = counts * (limit - len(counts)) / counts.sum()
    keep = 1 + np.floor(share).astype(np.int64)
    remainder = np.where(keep < counts, share - np.floor(share), -1.0)  # -1: the region is already whole
    keep[np.argsort(-remainder, kind="stable")[: limit - keep.sum()]] += 1
    return np.minimum(keep, counts)


def _move(brush: dict, points: np.ndarray, region: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions [n, T, 2] of seed points [n, 2] under one brush (camera not applied) and whether each is in the
    brush's region [n, T] (always, except for flow)."""
    n, mode = len(points), brush["mode"]
    xy = np.broadcast_to(points[:, None], (n, frames, 2))
    inside = np.ones((n, frames), bool)
    if mode == "path":
        args = (brush["path"], frames, brush.get("easing", "linear"), brush["strength"], brush.get("speed"))
        xy = xy + path_offsets(*args)
    elif mode == "sway":
        rows, cols = np.nonzero(region)
        lo, hi = np.array([cols.min(), rows.min()]), np.array([cols.max(), rows.max()])
        t = (points - lo) / np.maximum(hi - lo, 1)  # [n, 2]: 0 at the left / top edge, 1 at the right / bottom
        g = {"none": np.ones(n), "top": t[:, 1], "bottom": 1 - t[:, 1], "left": t[:, 0], "right": 1 - t[:, 0]}
        args = (brush["direction"], brush["strength"] * brush["amplitude"], brush["period"], brush["phase"], frames)
        xy = xy + g[brush["anchor"]][:, None, None] * sway_offsets(*args)
    elif mode == "flow":
        d = np.asarray(brush["direction"]) / np.linalg.norm(brush["direction"])
        along = np.stack(np.nonzero(region)[::-1], axis=-1) @ d  # the region's pixel centres projected on d
        lo, period = along.min() - 0.5, along.max() - along.min() + 1.0
        a0 = points @ d
        a = lo + np.mod(a0[:, None] + brush["strength"] * brush["speed"] * np.arange(frames) - lo, period)
        xy = xy + (a - a0[:, None])[..., None] * d
        i, j, in_frame = _nearest(xy, region.shape[::-1])
        inside = in_frame & region[i, j]
    return xy, inside


def _kind(brush: dict) -> str:
    """The model's kind of a brush's tracks: its mode, or for explicit trajectories the kind the file gives."""
    return brush["kind"] if brush["mode"] == TRACKS else brush["mode"]


def compile_brushes(
    src: str | Path | dict,
    *,
    max_tracks: int = 256,
    size: tuple[int, int] | None = None,
    frames: int | None = None,
    spacing: float = 4.0,
) -> Tracks:
    """Brush file (anything `load_brushes` takes; size (W, H) and frames checked against it) -> Tracks of
    max_tracks rows. Seeds lie `spacing / sqrt(density)` px apart; when there are more than max_tracks, each region
    keeps a proportional, spatially spread share (at least one). Deterministic; pure numpy."""
    spec = load_brushes(src, size=size, frames=frames)
    if isinstance(max_tracks, bool) or not isinstance(max_tracks, numbers.Integral) or max_tracks < 1:
        raise WanjaxError(f"max_tracks={max_tracks!r} must be an integer ≥ 1; use e.g. 256")
    if not (math.isfinite(spacing) and spacing > 0):
        raise WanjaxError(f"spacing={spacing!r} must be a finite number of pixels > 0; use e.g. 4.0")
    (width, height), t, brushes = spec["size"], spec["frames"], spec["brushes"]
    regions = {i: mask_pixels(b["mask"], (width, height)) for i, b in enumerate(brushes) if "mask" in b}
    camera = next((i for i, b in enumerate(brushes) if b["mode"] == "camera"), None)
    if camera is not None:  # background points: pixels no other mask covers (none if the masks cover everything)
        background = ~np.any([np.zeros((height, width), bool), *regions.values()], axis=0)
        if background.any():
            regions[camera] = background
    given = {i: _trajectories(b, t) for i, b in enumerate(brushes) if b["mode"] == TRACKS}
    order = sorted([*regions, *given])
    if len(order) > max_tracks:
        raise WanjaxError(
            f"max_tracks={max_tracks} is fewer than the {len(order)} brush regions that each need a track; "
            f"use max_tracks ≥ {len(order)}"
        )
    seeds = {i: _seeds(r, spacing / math.sqrt(brushes[i]["density"])) for i, r in regions.items()}
    quotas = _quotas(np.array([len(seeds[i]) if i in seeds else len(given[i][0]) for i in order], np.int64), max_tracks)
    moved = [
        _move(brushes[i], seeds[i][:q], regions[i], t) if i in regions else (given[i][0][:q], given[i][1][:q])
        for i, q in zip(order, quotas, strict=True)
    ]
    xy = np.concatenate([np.zeros((0, t, 2)), *(m[0] for m in moved)])
    visible = np.concatenate([np.zeros((0, t), bool), *(m[1] for m in moved)])
    ids = np.repeat(np.array(order, np.int64), quotas)
    if camera is not None:
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        zoom = brushes[camera]["zoom"] ** np.arange(t, dtype=np.float64)[:, None]
        panned = centre + zoom * (xy - centre) + camera_offsets(brushes[camera]["pan"], t)
        xy = np.where(np.isin(ids, list(given))[:, None, None], xy, panned)
    visible = visible & _nearest(xy, (width, height))[2]
    kinds = np.repeat(np.array([KINDS.index(_kind(brushes[i])) for i in order], np.int64), quotas)
    pad = max_tracks - len(ids)
    return Tracks(
        xy=np.pad(xy.astype(np.float32), ((0, pad), (0, 0), (0, 0))),
        visible=np.pad(visible, ((0, pad), (0, 0))),
        valid=np.arange(max_tracks) < len(ids),
        brush_id=np.pad(ids, (0, pad), constant_values=-1).astype(np.int32),
        kind=np.pad(kinds, (0, pad), constant_values=-1).astype(np.int32),
        size=(width, height),
        frames=t,
    )
