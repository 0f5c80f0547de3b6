"""Pictures of motion brushes for people: what was asked (masks, arrows and compiled tracks on the first frame) and
what happened (the tracks' positions on every frame of a video).

    paths = save_overlays("out", image, brushes, compile_brushes(brushes), video)   # out/brush_overlay.{png,gif,mp4}

Frames are upscaled (nearest) by an integer `scale` first, since lines on a 64-px frame are unreadable. Shapes are
rasterised as coverage layers at SUPERSAMPLE x the output size and box-filtered down, so lines and arrow heads are
anti-aliased while the picture underneath keeps its hard pixels. Each mode has one colour (COLORS), used for its
mask tint, outline, arrows and tracks; arrows, pins and video dots sit on a dark halo so they read on sky and
foliage alike.
Coordinates are the brush file's: pixels, x right, y down, pixel (row i, column j) centred at (x, y) = (j, i).
Sizes below are in source pixels, so marks grow with `scale`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from wanjax.data.sprites import FPS
from wanjax.errors import WanjaxError
from wanjax.io.export import atomic_write, write_video
from wanjax.motion.brush import TRACKS, load_brushes, mask_pixels
from wanjax.motion.tracks import KINDS, Tracks, spread_order

COLORS = {
    "path": (255, 72, 40),
    "sway": (255, 212, 0),
    "flow": (0, 210, 255),
    "static": (255, 56, 232),
    "camera": (255, 255, 255),
    TRACKS: (120, 255, 90),
}
HALO = (16, 16, 16)
SUPERSAMPLE = 4
TINT = 0.35  # mask fill opacity: the picture stays recognisable under it
LINE, HEAD = 0.75, 2.5  # arrow shaft width and head length
GROW = 0.3  # halo margin around every mark
TRACK, DOT = 0.25, 0.45  # track polyline width and start / current dot radius
ARROWS = 24  # a tracks brush: arrows along this many of its moving trajectories (spread over the frame)

# A mark is a list of primitives, drawn twice (grown by GROW in HALO, then as is in colour):
# ("line", points [N, 2], width) with round caps and joints, ("poly", points [N, 2]) filled, ("disc", centre, radius).
Mark = list[tuple]


class _Layer:
    """Coverage [H * scale, W * scale] in [0, 1] of shapes given in source pixels."""

    def __init__(self, size: tuple[int, int], scale: int):
        self.k = scale * SUPERSAMPLE
        self.img = Image.new("L", (size[0] * self.k, size[1] * self.k))
        self.draw = ImageDraw.Draw(self.img)

    def _px(self, xy) -> list[tuple[float, float]]:
        return [(float(x), float(y)) for x, y in (np.reshape(xy, (-1, 2)) + 0.5) * self.k]

    def disc(self, centre, radius: float) -> None:
        (x, y), r = self._px(centre)[0], radius * self.k
        self.draw.ellipse([x - r, y - r, x + r, y + r], fill=255)

    def line(self, xy, width: float) -> None:
        pts = np.reshape(xy, (-1, 2))
        if len(pts) > 1:
            self.draw.line(self._px(pts), fill=255, width=max(1, round(width * self.k)))
        for p in pts:  # round caps and joints: PIL ends lines square
            self.disc(p, width / 2)

    def polygon(self, xy) -> None:
        self.draw.polygon(self._px(xy), fill=255)

    def render(self, mark: Mark, grow: float) -> None:
        for kind, pts, *size in mark:
            if kind == "line":
                self.line(pts, size[0] + 2 * grow)
            elif kind == "disc":
                self.disc(pts, size[0] + grow)
            else:
                self.polygon(pts)
                if grow:
                    self.line(np.concatenate([pts, pts[:1]]), 2 * grow)

    def coverage(self) -> np.ndarray:
        return np.asarray(self.img.reduce(SUPERSAMPLE), np.float32) / 255


def _blend(canvas: np.ndarray, color, alpha: np.ndarray) -> None:
    """canvas float [H, W, 3] <- canvas over-painted with `color` at opacity alpha [H, W], in place."""
    canvas += alpha[..., None] * (np.asarray(color, np.float32) - canvas)


def _paint(canvas: np.ndarray, size: tuple[int, int], scale: int, marks: list[tuple[Mark, tuple]], halo: bool) -> None:
    """Draw (mark, colour) pairs onto canvas, with halos first, so no halo covers another mark's colour."""
    if halo:
        dark = _Layer(size, scale)
        for mark, _ in marks:
            dark.render(mark, GROW)
        _blend(canvas, HALO, 0.85 * dark.coverage())
    for color in dict.fromkeys(c for _, c in marks):  # one layer per colour, in first-use order
        layer = _Layer(size, scale)
        for mark, c in marks:
            if c == color:
                layer.render(mark, 0.0)
        _blend(canvas, color, layer.coverage())


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """[..., H, W, C] -> [..., H * scale, W * scale, C], nearest."""
    return np.repeat(np.repeat(frames, scale, axis=-3), scale, axis=-2)


def _arrow(points, head: float = HEAD, both: bool = False) -> Mark:
    """A polyline [N, 2] with a head at its end (and at its start if `both`); a dot if it has no length."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    pts = pts[np.r_[True, np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6]]
    if len(pts) < 2:
        return [("disc", pts[0], LINE)]
    # A short arrow gets a smaller head, so its shaft still shows.
    head = min(head, 0.6 * float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) / (2 if both else 1))
    mark, shaft = [], pts.copy()
    for tip, before in ((-1, -2), (0, 1)) if both else ((-1, -2),):
        u = pts[tip] - pts[before]
        u /= np.linalg.norm(u)
        base, side = pts[tip] - head * u, 0.55 * head * np.array([-u[1], u[0]])
        mark.append(("poly", np.stack([pts[tip], base + side, base - side])))
        shaft[tip] = pts[tip] - 0.5 * head * u  # stop inside the head, whose tip is narrower than the shaft
    return [("line", shaft, LINE), *mark]


def _circle(centre, radius: float, n: int = 24) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n + 1)
    return np.asarray(centre) + radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def _brush_mark(brush: dict, mask: np.ndarray | None, size: tuple[int, int], frames: int) -> Mark:
    """The arrows / pin of one normalised brush (load_brushes: its mask has a pixel); mask bool [H, W] (None for
    camera, whose zoom shows in its tracks, not here)."""
    mode = brush["mode"]
    if mode == TRACKS:  # arrows along a spread share of the trajectories that move, each up to where it is lost
        xy = np.asarray(brush["points"], np.float64)
        xy = xy[:, :1] + brush["strength"] * (xy - xy[:, :1])
        seen = np.asarray(brush.get("visible", np.ones(xy.shape[:2], bool)), bool)
        last = np.where(seen.all(axis=1), xy.shape[1], np.argmin(seen, axis=1))  # frames up to the first hidden one
        moves = np.array([np.linalg.norm(q[:n] - q[0], axis=-1).max() for q, n in zip(xy, last, strict=True)]) >= 1
        picked = np.flatnonzero(moves)[spread_order(xy[moves, 0])][:ARROWS]
        return [part for p in picked for part in _arrow(xy[p, : last[p]])]
    if mode == "camera":
        centre = (np.array(size, np.float64) - 1) / 2
        end = centre + (frames - 1) * np.asarray(brush["pan"], np.float64)
        if np.linalg.norm(end - centre) < 0.5:  # no visible pan: a ring marks the camera brush
            return [("line", _circle(centre, 1.5), LINE)]
        return _arrow([centre, end])
    if mode == "path":
        return _arrow(brush["path"])
    ys, xs = np.nonzero(mask)
    pixels = np.stack([xs, ys], axis=1).astype(np.float64)
    centre = pixels.mean(axis=0)
    if mode == "static":
        arm = np.array([1.4, 1.4])
        return [
            ("line", _circle(centre, 2.2), LINE),
            ("line", [centre - arm, centre + arm], LINE),
            ("line", [centre - arm * [1, -1], centre + arm * [1, -1]], LINE),
        ]
    u = np.asarray(brush["direction"], np.float64)
    u = u / np.linalg.norm(u)
    if mode == "sway":
        half = max(float(brush["amplitude"]), 1.6 * HEAD)  # a tiny amplitude still needs room for two heads
        mark = _arrow([centre - half * u, centre + half * u], both=True)
        edge = {"top": (1, 0), "bottom": (1, 1), "left": (0, 0), "right": (0, 1)}.get(brush["anchor"])
        if edge is not None:  # a bar on the anchor edge: the hinge the sway grows from
            axis, high = edge
            at = pixels[:, axis].max() if high else pixels[:, axis].min()
            hinge = np.stack([centre, centre])
            hinge[:, axis] = at
            hinge[:, 1 - axis] += [-3.0, 3.0]
            mark.append(("line", hinge, LINE))
        return mark
    # flow: arrows along the direction through the centre and, where still inside the mask, either side of it
    along, across = pixels @ u, pixels @ np.array([-u[1], u[0]])
    length = max(0.5 * float(np.ptp(along)), 2 * HEAD)
    mark = []
    for offset in (0.0, -0.3 * float(np.ptp(across)), 0.3 * float(np.ptp(across))):
        c = centre + offset * np.array([-u[1], u[0]])
        x, y = np.round(c).astype(int)
        if offset == 0.0 or (0 <= x < size[0] and 0 <= y < size[1] and mask[y, x]):
            mark += _arrow([c - length / 2 * u, c + length / 2 * u])
    return mark


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of bool mask [H, W] within `width` steps (4-neighbour) of its edge; the frame border is no edge."""
    inner = mask
    for _ in range(width):
        p = np.pad(inner, 1, mode="edge")
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _track_arrays(tracks: Tracks, spec: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Of the P' valid tracks: xy float [P', T, 2], visible bool [P', T], joined bool [P', T - 1] (draw a line from
    frame f to f + 1) and each one's mode name: its brush's in the brush file `spec` (load_brushes), else its kind's.

    A flow point that leaves its region respawns upstream: that step, far off the track's usual one, is a jump, not
    motion, so it is not joined."""
    valid = np.asarray(tracks.valid, bool)
    kinds = [KINDS[k] for k in np.asarray(tracks.kind)[valid]]
    if spec is not None:
        kinds = [spec["brushes"][b]["mode"] for b in np.asarray(tracks.brush_id)[valid]]
    xy, visible = np.asarray(tracks.xy, np.float64)[valid], np.asarray(tracks.visible, bool)[valid]
    steps = np.diff(xy, axis=1)
    usual = np.median(steps, axis=1, keepdims=True)
    jump = np.linalg.norm(steps - usual, axis=-1) > np.maximum(1.0, np.linalg.norm(usual, axis=-1))
    flow = np.array([k == "flow" for k in kinds], bool)[:, None]
    return xy, visible, visible[:, :-1] & visible[:, 1:] & ~(jump & flow), kinds


def _polylines(xy: np.ndarray, joined: np.ndarray, width: float) -> Mark:
    """Runs of joined steps (joined [T - 1]) of one track xy [T, 2] as lines."""
    edges = np.flatnonzero(np.diff(np.r_[0, joined.astype(np.int8), 0]))
    return [("line", xy[a : b + 1], width) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _check(frames: np.ndarray, tracks: Tracks, what: str, lead: tuple[int, ...], scale: int) -> None:
    """frames must be uint8 [*lead, H, W, 3] for the tracks' size (W, H); scale a whole number ≥ 1."""
    want = (*lead, tracks.size[1], tracks.size[0], 3)
    if frames.dtype != np.uint8 or frames.shape != want:
        raise WanjaxError(
            f"{what} must be uint8 {list(want)} for these tracks, got {frames.dtype} {list(frames.shape)}"
        )
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise WanjaxError(f"scale={scale!r} must be a whole number ≥ 1 (the upscaling factor); use e.g. 4")


def overlay_brushes(image: np.ndarray, brushes: str | Path | dict, tracks: Tracks, scale: int = 4) -> np.ndarray:
    """The first frame uint8 [H, W, 3] upscaled to [H * scale, W * scale, 3] with each brush drawn on it: its mask
    tinted and outlined in the mode's colour; an arrow along a path; a double arrow of the sway amplitude (and a
    bar on its anchor edge); arrows along a flow; a pin on a static region; an arrow from the frame centre over the
    whole clip's camera pan; arrows along some trajectories of a tracks brush. Under the marks, every valid track
    over all frames (a thin line, a dot at its start).

    brushes: a brush file (anything load_brushes takes); tracks: compile_brushes of the same file."""
    image = np.asarray(image)
    _check(image, tracks, "image", (), scale)
    spec, size = load_brushes(brushes, size=tracks.size, frames=tracks.frames), tuple(tracks.size)
    canvas = _upscale(image, scale).astype(np.float32)
    marks, outline = [], max(1, scale // 2)
    for brush in spec["brushes"]:
        color = COLORS[brush["mode"]]
        mask = mask_pixels(brush["mask"], size) if "mask" in brush else None
        if mask is not None:
            up = _upscale(mask[..., None], scale)[..., 0]
            _blend(canvas, color, TINT * up)
            _blend(canvas, color, _outline(up, outline).astype(np.float32))
        marks.append((_brush_mark(brush, mask, size, tracks.frames), color))
    xy, visible, joined, kinds = _track_arrays(tracks, spec)
    lines = []
    for p, kind in enumerate(kinds):
        # Lightened: a track crosses its own mask, whose tint is the mode colour.
        color = tuple(int(c + 0.5 * (255 - c)) for c in COLORS[kind])
        start = np.flatnonzero(visible[p])[:1]
        mark = _polylines(xy[p], joined[p], TRACK) + [("disc", xy[p, i], DOT) for i in start]
        lines.append((mark, color))
    _paint(canvas, size, scale, lines, halo=False)  # hundreds of tracks: halos would bury the picture
    _paint(canvas, size, scale, marks, halo=True)
    return np.round(canvas).astype(np.uint8)


def overlay_video(
    video: np.ndarray, tracks: Tracks, scale: int = 4, tail: int = 4, brushes: str | Path | dict | None = None
) -> np.ndarray:
    """Every frame of video uint8 [T, H, W, 3] upscaled to [T, H * scale, W * scale, 3], with each valid track's
    position in that frame as a dot and its last `tail` frames as a line (visible points only), in its mode's
    colour (its brush's, given the brush file `brushes` the tracks came from; else its kind's): what the brushes
    asked for, on what the model made."""
    video = np.asarray(video)
    _check(video, tracks, "video", (tracks.frames,), scale)
    spec = None if brushes is None else load_brushes(brushes, size=tracks.size, frames=tracks.frames)
    size, (xy, visible, joined, kinds) = tuple(tracks.size), _track_arrays(tracks, spec)
    out = _upscale(video, scale)
    for f in range(len(video)):
        canvas = out[f].astype(np.float32)
        lo = max(0, f - tail)
        marks = []
        for p, kind in enumerate(kinds):
            mark = _polylines(xy[p, lo : f + 1], joined[p, lo:f], TRACK)
            marks.append((mark + ([("disc", xy[p, f], DOT)] if visible[p, f] else []), COLORS[kind]))
        _paint(canvas, size, scale, marks, halo=True)
        out[f] = np.round(canvas).astype(np.uint8)
    return out


def save_overlays(
    out_dir: str | Path,
    image: np.ndarray,
    brushes: str | Path | dict,
    tracks: Tracks,
    video: np.ndarray | None = None,
    name: str = "brush",
    scale: int = 4,
    fps: int = FPS,
) -> dict[str, Path]:
    """Write {name}_overlay.png (overlay_brushes) and, given video uint8 [T, H, W, 3], {name}_overlay.gif and .mp4
    (overlay_video) into out_dir, each under a temporary name first. Returns {"png": path, "gif": ..., "mp4": ...}."""
    import imageio.v3 as iio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    still = overlay_brushes(image, brushes, tracks, scale)
    paths = {"png": atomic_write(out / f"{name}_overlay.png", lambda p: iio.imwrite(p, still))}
    if video is not None:
        frames = overlay_video(video, tracks, scale, brushes=brushes)
        for ext in ("gif", "mp4"):
            paths[ext] = write_video(out / f"{name}_overlay.{ext}", frames, fps)
    return paths
