"""Point tracks of a video: dense optical flow between consecutive frames (OpenCV), chained by bilinear sampling.

    tracks = track_video(video, points=1024, reseed=256)   # Tracks: a grid of frame-0 points + re-seeded ones
    xy, visible = track_points(video, queries)             # given query points [P, 2] in frame 0
    brush = video_brush("clip.mp4", points=256)            # a brush file: `wanjax tracks clip.mp4 --out B.json`

A point at x_t moves to x_{t+1} = x_t + f_t(x_t), f_t the flow from frame t to t+1 sampled bilinearly (sub-pixel).
It is visible while it is in frame and every step passes the forward-backward check of Sundaram et al. 2010
("Dense point trajectories by GPU-accelerated large displacement optical flow", eq. 5): with b_t the flow from
t+1 back to t, |f + b(x + f)|² ≤ FB_ALPHA (|f|² + |b(x + f)|²) + FB_BETA. A point failing it is hidden there (its
patch is covered, or the flow is wrong); more than PATIENCE failures in a row end the track: after an occlusion the
chain would follow the occluder. Re-seeding: cells of a grid that no live track comes near get a new track (once per
cell), chained forward and, through the backward flows, back to frame 0, visible only where the same check passes.

The method was chosen by measurement (README "Motion from real video", scripts/eval_tracking.py, bench/tracking.json):
DIS (medium preset, patches not mean-normalised, frames upscaled to 256 px when smaller) tracks textured points
best, keeps visibility precision / recall above 0.9 where things leave the frame or are covered, and follows large
motion at 480p, which Farneback loses; Farneback carries flat, untextured regions' motion inside them better.
Coordinates as in `wanjax.motion.brush`: pixels, x right, y down, pixel (row i, column j) centred at (j, i).
Shapes: T frames, H W pixels, P points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wanjax.config import check_frame_count
from wanjax.errors import WanjaxError
from wanjax.motion.brush import TRACKS, load_brushes, mask_pixels
from wanjax.motion.tracks import KINDS, Tracks

# Method -> the least frame side its flow runs at (smaller videos are upscaled, bicubic): DIS's 8-px patches need
# room (measured best at 256); Farneback's polynomial windows lose flat regions when upscaled further than 128.
METHODS = {"dis": 256, "dis-fast": 256, "farneback": 128}
FB_ALPHA, FB_BETA = 0.01, 0.25  # px² of the video (scaled with the flow grid)
PATIENCE = 1  # failed steps in a row a track survives (hidden there): flow near moving edges misses one step
BACKGROUND_PX = 1.0  # a track off the dominant motion by more than this moves on its own (`background`)


def _flow_fn(method: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Dense flow of method between two grey uint8 frames [H, W] -> float32 [H, W, 2] (px, x then y)."""
    import cv2

    if method == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 13, 5, 7, 1.5, 0)
    if method not in METHODS:
        raise WanjaxError(f"tracking method {method!r} is not one of {', '.join(METHODS)}")
    dis = cv2.DISOpticalFlow_create(
        cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if method == "dis" else cv2.DISOPTICAL_FLOW_PRESET_FAST
    )
    # Patches compared as they are, not mean-normalised: a flat sprite differs from the ground by its level alone.
    dis.setUseMeanNormalization(False)
    return lambda a, b: dis.calc(a, b, None)


def grey_frames(video: np.ndarray, factor: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> the image the flow sees, uint8 [T, H * factor, W * factor] (bicubic upscaling):
    luma / 2 + saturation (max - min of r, g, b), so colour edges of equal luma still show (a red sprite on
    mid-grey ground has nearly its luma)."""
    import cv2

    rgb = np.asarray(video[..., :3], np.float32)
    grey = 0.5 * (rgb @ np.float32([0.299, 0.587, 0.114])) + rgb.max(axis=-1) - rgb.min(axis=-1)
    grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    if factor == 1:
        return grey
    h, w = grey.shape[1:]
    return np.stack([cv2.resize(g, (w * factor, h * factor), interpolation=cv2.INTER_CUBIC) for g in grey])


def video_flows(video: np.ndarray, method: str = "dis") -> tuple[np.ndarray, np.ndarray, int]:
    """Forward flows f [T-1, H', W', 2] (frame t -> t+1), backward flows b [T-1, H', W', 2] (t+1 -> t) in px of the
    flow grid, and its upscaling factor (H' = factor · H: videos below the method's METHODS side are upscaled)."""
    flow = _flow_fn(method)
    factor = max(1, math.ceil(METHODS[method] / min(video.shape[1:3])))
    grey = grey_frames(video, factor)
    fwd = np.stack([flow(a, b) for a, b in zip(grey[:-1], grey[1:], strict=True)])
    bwd = np.stack([flow(b, a) for a, b in zip(grey[:-1], grey[1:], strict=True)])
    return fwd, bwd, factor


def bilinear(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """field [H, W, C] at points xy [P, 2] (pixel units, clamped to the pixel centres) -> [P, C]."""
    h, w = field.shape[:2]
    x, y = np.clip(xy[:, 0], 0, w - 1), np.clip(xy[:, 1], 0, h - 1)
    x0, y0 = np.minimum(np.floor(x), w - 2).astype(np.int64), np.minimum(np.floor(y), h - 2).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = field[y0, x0] * (1 - fx) + field[y0, x0 + 1] * fx
    bottom = field[y0 + 1, x0] * (1 - fx) + field[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _step(there: np.ndarray, back: np.ndarray, xy: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Points xy [P, 2] (video px) moved by flow `there` (flow-grid px) and whether the step passes the
    forward-backward check against `back`, the flow of the opposite direction."""
    up = (xy + 0.5) * factor - 0.5
    f = bilinear(there, up)
    b = bilinear(back, up + f)
    ok = np.square(f + b).sum(-1) <= FB_ALPHA * (np.square(f).sum(-1) + np.square(b).sum(-1)) + FB_BETA * factor**2
    return xy + f / factor, ok


def _in_frame(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return (xy[:, 0] >= -0.5) & (xy[:, 0] <= size[0] - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= size[1] - 0.5)


def _chain(
    flows: tuple, xy: np.ndarray, start: np.ndarray, size: tuple[int, int], forward: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Follow points from frame start [P] (xy [P, T, 2]: position at their start frame) forward (or backward) to the
    clip's end (start). Returns xy [P, T, 2] (held at the last position where lost) and visible [P, T]."""
    fwd, bwd, factor = flows
    T = len(fwd) + 1
    xy, visible = xy.copy(), np.zeros(xy.shape[:2], bool)
    alive, misses = np.zeros(len(xy), bool), np.zeros(len(xy), np.int64)
    order = range(T) if forward else range(T - 1, -1, -1)
    for t in order:
        born = start == t
        xy[born, t] = xy[born, start[born]]
        alive |= born & _in_frame(xy[:, t], size)
        misses = np.where(born, 0, misses)
        nxt = t + 1 if forward else t - 1
        visible[:, t] |= alive & (misses == 0)
        if not 0 <= nxt < T:
            break
        pair = (fwd[t], bwd[t]) if forward else (bwd[t - 1], fwd[t - 1])
        moved, ok = _step(*pair, xy[:, t], factor)
        xy[:, nxt] = np.where(alive[:, None], moved, xy[:, t])
        misses = np.where(ok, 0, misses + 1)
        alive &= (misses <= PATIENCE) & _in_frame(xy[:, nxt], size)
    return xy, visible


def track_points(video: np.ndarray, queries: np.ndarray, method: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    """Tracks of query points [P, 2] given in frame 0 of video uint8 [T, H, W, 3] -> xy float32 [P, T, 2],
    visible bool [P, T] (False from the first occlusion or exit on)."""
    video = _check(video)
    size = (video.shape[2], video.shape[1])
    q = np.asarray(queries, np.float64).reshape(-1, 2)
    xy = np.zeros((len(q), len(video), 2))
    xy[:, 0] = q
    xy, visible = _chain(video_flows(video, method), xy, np.zeros(len(q), np.int64), size)
    return xy.astype(np.float32), visible


def grid(size: tuple[int, int], count: int) -> np.ndarray:
    """About `count` (at most) pixel centres [N, 2] on a regular grid over a W x H frame, margins equal."""
    width, height = size
    step = math.sqrt(width * height / max(count, 1))
    nx, ny = max(1, min(width, round(width / step))), max(1, min(height, round(height / step)))
    while nx * ny > count:
        nx, ny = (nx - 1, ny) if nx / width >= ny / height and nx > 1 else (nx, ny - 1)
    gx = np.floor((np.arange(nx) + 0.5) * width / nx)
    gy = np.floor((np.arange(ny) + 0.5) * height / ny)
    return np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)


def _reseed(
    xy: np.ndarray, visible: np.ndarray, cells: np.ndarray, cell: float, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Start frames and positions of up to `budget` new tracks: at each frame t ≥ 1, the centre of every grid cell
    (centres `cells` [C, 2], `cell` px apart) with no visible track of xy [P, T, 2] within a cell of it (a gap, not a
    track that moved on to the next cell) and none seeded before."""
    used = np.zeros(len(cells), bool)
    starts, points = [], []
    for t in range(1, xy.shape[1]):
        if len(points) >= budget:
            break
        live = xy[visible[:, t], t]
        nearest = np.abs(live[None] - cells[:, None]).max(-1).min(-1) if len(live) else np.full(len(cells), np.inf)
        empty = np.flatnonzero((nearest > cell) & ~used)[: budget - len(points)]
        used[empty] = True
        starts += [t] * len(empty)
        points += list(cells[empty])
    return np.array(starts, np.int64), np.array(points, np.float64).reshape(-1, 2)


def track_video(video: np.ndarray, points: int = 1024, reseed: int = 0, method: str = "dis") -> Tracks:
    """Dense tracks of video uint8 [T, H, W, 3]: a grid of about `points` frame-0 points, then up to `reseed` tracks
    started later where no track lives (each chained back to frame 0 as far as it holds). Returns Tracks with
    P = points + reseed rows (valid marks the used ones), one brush (brush_id 0) of kind "path"."""
    video = _check(video)
    if points < 1 or reseed < 0:
        raise WanjaxError(f"points={points}, reseed={reseed}: need points ≥ 1 and reseed ≥ 0 (e.g. 1024 and 256)")
    T, size = len(video), (video.shape[2], video.shape[1])
    flows = video_flows(video, method)
    seeds = grid(size, points)
    xy = np.zeros((len(seeds), T, 2))
    xy[:, 0] = seeds
    xy, visible = _chain(flows, xy, np.zeros(len(seeds), np.int64), size)
    if reseed:
        cells = grid(size, points)
        cell = math.sqrt(size[0] * size[1] / len(cells))
        start, new = _reseed(xy, visible, cells, cell, reseed)
        born = np.zeros((len(new), T, 2))
        born[np.arange(len(new)), start] = new
        ahead, seen_ahead = _chain(flows, born, start, size)
        behind, seen_behind = _chain(flows, born, start, size, forward=False)
        later = np.arange(T)[None, :] >= start[:, None]
        xy = np.concatenate([xy, np.where(later[..., None], ahead, behind)])
        visible = np.concatenate([visible, np.where(later, seen_ahead, seen_behind)])
    n, rows = len(xy), points + reseed
    pad = rows - n
    return Tracks(
        xy=np.pad(xy.astype(np.float32), ((0, pad), (0, 0), (0, 0))),
        visible=np.pad(visible, ((0, pad), (0, 0))),
        valid=np.arange(rows) < n,
        brush_id=np.where(np.arange(rows) < n, 0, -1).astype(np.int32),
        kind=np.where(np.arange(rows) < n, KINDS.index("path"), -1).astype(np.int32),
        size=size,
        frames=T,
    )


def _check(video: np.ndarray) -> np.ndarray:
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] not in (3, 4) or len(video) < 2:
        raise WanjaxError(
            f"video must be uint8 [T ≥ 2, H, W, 3], got {video.dtype} {list(video.shape)}; read it with "
            "wanjax.data.tfds.video_latents.read_frames"
        )
    if min(video.shape[1:3]) < 2:
        raise WanjaxError(f"video frames of {video.shape[2]}x{video.shape[1]} px are too small to track; use ≥ 2x2")
    return video


def background(xy: np.ndarray, visible: np.ndarray, tolerance: float = BACKGROUND_PX) -> np.ndarray:
    """bool [P]: which tracks (xy [P, T, 2], visible [P, T]) move with the clip's dominant motion, a per-frame
    affine map of the frame-0 positions fitted to the visible tracks (least squares, refitted twice without the
    tracks off it by more than `tolerance` px): the camera's, where the moving things cover less than half the
    frame. The rest are the things that move on their own."""
    start = np.concatenate([xy[:, 0], np.ones((len(xy), 1))], axis=1)  # [P, 3]
    off = np.zeros(len(xy), bool)
    for t in range(1, xy.shape[1]):
        keep, far = visible[:, t], np.zeros(len(xy), bool)
        for _ in range(3):
            use = keep & ~far
            if use.sum() < 3:
                break
            fit = np.linalg.lstsq(start[use], xy[use, t], rcond=None)[0]  # [3, 2]
            far = keep & (np.linalg.norm(start @ fit - xy[:, t], axis=-1) > tolerance)
        off |= far
    return ~off


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video file -> uint8 [T, H, W, 3]; a file that cannot be decoded is named in the error."""
    import imageio.v3 as iio

    try:
        frames = [f[..., :3] for f in iio.imiter(path)]
    except Exception as e:  # imageio / ffmpeg raise many types for a broken file
        raise WanjaxError(f"{path}: cannot decode it ({type(e).__name__}); is it a complete video file?") from None
    if len(frames) < 2:
        raise WanjaxError(f"{path}: has {len(frames)} frame(s); tracking needs a video of at least 5 frames (4k+1)")
    return np.stack(frames)


def video_brush(
    path: str | Path, points: int = 256, mask: dict | None = None, frames: int | None = None, method: str = "dis"
) -> dict:
    """A brush file (version 1) with the motion of a video: about `points` trajectories started on a grid in frame 0
    (inside `mask`, a brush mask such as {"box": [x0, y0, x1, y1]}, if given), over its first `frames` frames (None:
    the most a brush file allows, 4k+1), as two `tracks` brushes: "background" (kind camera: those that follow the
    dominant motion, `background`) and "moving" (kind path: the rest), either left out when empty. Positions
    rounded to 0.01 px."""
    video = read_video(path)
    T = len(video) - (len(video) - 1) % 4 if frames is None else frames
    check_frame_count(T, "frames")
    if T > len(video):
        raise WanjaxError(f"{path}: has {len(video)} frames, fewer than frames={T}; ask for at most {len(video)}")
    video, size = video[:T], (video.shape[2], video.shape[1])
    region = np.ones(size[::-1], bool)
    if mask is not None:
        spec = {"version": 1, "size": list(size), "frames": T, "brushes": [{"mode": "static", "mask": mask}]}
        region = mask_pixels(load_brushes(spec)["brushes"][0]["mask"], size)
    queries = grid(size, max(1, round(points * region.size / region.sum())))
    queries = queries[region[queries[:, 1].astype(int), queries[:, 0].astype(int)]][:points]
    if not len(queries):  # a mask thinner than the grid: its pixel nearest its centroid
        rows, cols = np.nonzero(region)
        k = np.argmin((cols - cols.mean()) ** 2 + (rows - rows.mean()) ** 2)
        queries = np.array([[cols[k], rows[k]]], np.float64)
    xy, visible = track_points(video, queries, method)
    still = background(xy, visible)
    brushes = [
        {
            "mode": TRACKS,
            "name": name,
            "kind": kind,
            "points": np.round(xy[rows], 2).tolist(),
            "visible": visible[rows].tolist(),
        }
        for name, kind, rows in (("background", "camera", still), ("moving", "path", ~still))
        if rows.any()
    ]
    return {"version": 1, "size": list(size), "frames": T, "brushes": brushes}
