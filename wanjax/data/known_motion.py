"""Clips with known per-point motion, for measuring point trackers (`wanjax.motion.tracking`), and the scores.

    clip = affine_clip(seed)                      # a textured image under a known affine motion
    clip = layered_clip(seed)                     # textured discs over a textured background; they leave / cover
    xy, visible, scored = clip["truth"](points)   # ground truth of query points [P, 2] given in frame 0
    xy, visible, scored = brush_sprites_truth(brush_sprites(seed), points)   # the same for a BrushSprites clip
    s = score(*tracker(video, points), xy, visible, scored)          # end-point error, visibility precision / recall

Coordinates as in `wanjax.data.sprites`: pixels, x right, y down, pixel (row i, column j) centred at (x, y) = (j, i).
Every clip is rendered analytically (textures are sums of plane waves, evaluated where the inverse motion puts a
pixel), so the truth is exact up to uint8 rounding. `scored` [P, T] marks the (point, frame) pairs whose answer is
unambiguous: at least `MARGIN` px from the frame's edge and from the outline of anything covering the point, and
points starting that far inside their own layer (anti-aliased rims belong to two layers at once).
"""

from collections.abc import Callable

import numpy as np

from wanjax.config import check_frame_count

MARGIN = 1.0
TEXTURED = 10.0  # Shi-Tomasi cornerness at 64 px (grey levels² / px²): flat sprite interiors score below 2
Truth = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def texture(rng: np.random.Generator, n: int, wavelengths: tuple[float, float], amplitude: float):
    """A random grey texture: (x, y) -> amplitude · mean of n plane waves with wavelengths in the given range (px)."""
    k = 1.0 / rng.uniform(*wavelengths, n)
    theta, phase = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    kx, ky = k * np.cos(theta), k * np.sin(theta)

    def shade(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        waves = np.cos(2 * np.pi * (kx * x[..., None] + ky * y[..., None]) + phase)
        return amplitude * np.sqrt(2 / n) * waves.sum(axis=-1)

    return shade


def _grid(frames: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres x, y [T, H, W]."""
    y, x = np.mgrid[:height, :width].astype(np.float64)
    return np.broadcast_to(x, (frames, height, width)), np.broadcast_to(y, (frames, height, width))


def _to_uint8(grey: np.ndarray) -> np.ndarray:
    """Grey [T, H, W] -> uint8 [T, H, W, 3]."""
    return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _in_frame(xy: np.ndarray, width: int, height: int, margin: float) -> np.ndarray:
    """bool [...]: points xy [..., 2] at least `margin` px inside the frame [-0.5, W - 0.5] x [-0.5, H - 0.5]."""
    x, y = xy[..., 0], xy[..., 1]
    return (x >= margin - 0.5) & (x <= width - 0.5 - margin) & (y >= margin - 0.5) & (y <= height - 0.5 - margin)


def affine_motion(seed: int, frames: int, height: int, width: int) -> np.ndarray:
    """Per-frame affine maps [T, 2, 3] (frame-0 position -> frame-t position; the identity at t = 0): rotation about
    the frame centre by up to ±0.6°, scale by up to ±0.8 % and translation by up to ±1.2 px (at 64 px; scaled with
    the size) per frame."""
    rng = np.random.default_rng(seed)
    scale = min(height, width) / 64
    t = np.arange(frames, dtype=np.float64)
    angle, zoom = rng.uniform(-0.0105, 0.0105) * t, (1 + rng.uniform(-0.008, 0.008)) ** t
    shift = rng.uniform(-1.2, 1.2, 2) * scale * t[:, None]
    c = np.array([(width - 1) / 2, (height - 1) / 2])
    rot = zoom[:, None, None] * np.stack(
        [np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)], 1
    )
    return np.concatenate([rot, (c - rot @ c + shift)[..., None]], axis=-1)


def _apply(maps: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Affine maps [T, 2, 3] applied to points [P, 2] -> [P, T, 2]."""
    return np.einsum("tij,pj->pti", maps[..., :2], points) + maps[None, :, :, 2]


def affine_clip(seed: int, frames: int = 17, height: int = 64, width: int = 64) -> dict:
    """A textured grey image (wavelengths 4-24 px at 64 px) moved by `affine_motion`. Returns video uint8
    [T, H, W, 3], maps [T, 2, 3] and truth (points [P, 2] -> xy [P, T, 2], visible, scored [P, T])."""
    check_frame_count(frames, "frames")
    scale = min(height, width) / 64
    maps = affine_motion(seed, frames, height, width)
    shade = texture(np.random.default_rng([seed, 1]), 24, (4.0 * scale, 24.0 * scale), 45.0)
    inverse = np.linalg.inv(np.concatenate([maps, np.tile([[[0.0, 0.0, 1.0]]], (frames, 1, 1))], axis=1))
    x, y = _grid(frames, height, width)
    sx = inverse[:, 0, 0, None, None] * x + inverse[:, 0, 1, None, None] * y + inverse[:, 0, 2, None, None]
    sy = inverse[:, 1, 0, None, None] * x + inverse[:, 1, 1, None, None] * y + inverse[:, 1, 2, None, None]

    def truth(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xy = _apply(maps, np.asarray(points, np.float64))
        visible = _in_frame(xy, width, height, 0.0)
        return xy, visible, visible == _in_frame(xy, width, height, MARGIN)

    return {"video": _to_uint8(128 + shade(sx, sy)), "maps": maps, "truth": truth}


def layered_clip(seed: int, frames: int = 17, height: int = 64, width: int = 64) -> dict:
    """Three textured discs (radius 9 px at 64 px) moving at constant velocities over a textured background that
    pans: disc 0 leaves the frame through an edge, disc 2 passes over disc 1 (drawn in order). Returns video uint8
    [T, H, W, 3], centres [3, T, 2], radius, pan [2] (px/frame) and truth (as `affine_clip`)."""
    check_frame_count(frames, "frames")
    rng = np.random.default_rng(seed)
    scale, size = min(height, width) / 64, np.array([width, height], np.float64)
    radius, t = 9.0 * scale, np.arange(frames, dtype=np.float64)[:, None]
    pan = rng.uniform(-0.3, 0.3, 2) * scale
    edge = rng.integers(4)  # disc 0 leaves through this edge (left, right, top, bottom) halfway through the clip
    axis, out = edge // 2, edge % 2
    start0 = rng.uniform(0.35, 0.65, 2) * size
    target = start0.copy()
    target[axis] = size[axis] + 1.2 * radius if out else -1.2 * radius
    meet = rng.uniform(0.35, 0.65, 2) * size  # discs 1 and 2 are at the same place at the middle frame
    d1, d2 = rng.uniform(0.25, 0.5, 2) * size * rng.choice([-1, 1], 2), rng.uniform(0.25, 0.5, 2) * size
    mid = (frames - 1) / 2
    centres = np.stack(
        [
            start0 + (target - start0) * t / (0.75 * (frames - 1)),
            meet + d1 * (t - mid) / (frames - 1),
            meet + d2 * (t - mid) / (frames - 1) * rng.choice([-1, 1]),
        ]
    )
    shades = [texture(np.random.default_rng([seed, k]), 12, (3.0 * scale, 12.0 * scale), 40.0) for k in range(4)]
    x, y = _grid(frames, height, width)
    grey = 128 + shades[0](x - pan[0] * t[:, :, None], y - pan[1] * t[:, :, None])
    for k, (c, base) in enumerate(zip(centres, (70.0, 128.0, 190.0), strict=True)):
        dx, dy = x - c[:, 0, None, None], y - c[:, 1, None, None]
        cover = np.clip(0.5 - (np.hypot(dx, dy) - radius), 0.0, 1.0)
        grey = grey + cover * (base + shades[k + 1](dx, dy) - grey)

    def truth(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = np.asarray(points, np.float64)
        dist0 = np.linalg.norm(p[:, None] - centres[None, :, 0], axis=-1)  # [P, 3]
        inside = dist0 < radius
        layer = np.where(inside.any(axis=1), 2 - np.argmax(inside[:, ::-1], axis=1), -1)  # top-most disc; -1: ground
        motion = np.concatenate([pan * t[None], centres - centres[:, :1]])  # [4, T, 2] by layer + 1
        xy = p[:, None] + motion[layer + 1]
        # Distance from each point to each disc's rim at each frame; discs above the point's layer cover it.
        rim = np.linalg.norm(xy[:, None] - centres[None], axis=-1) - radius  # [P, 3, T]
        above = (np.arange(3)[None, :] > layer[:, None])[..., None]
        covered = (above & (rim < 0)).any(axis=1)
        near = (above & (np.abs(rim) < MARGIN)).any(axis=1)
        visible = _in_frame(xy, width, height, 0.0) & ~covered
        own = np.where(layer >= 0, radius - dist0[np.arange(len(p)), np.maximum(layer, 0)], np.inf)
        clear = ~((layer[:, None] < 0) & (np.abs(dist0 - radius) < MARGIN)).any(axis=1, keepdims=True)
        scored = (visible == _in_frame(xy, width, height, MARGIN)) & ~near & (own >= MARGIN)[:, None] & clear
        return xy, visible, scored

    return {"video": _to_uint8(grey), "centres": centres, "radius": radius, "pan": pan, "truth": truth}


def _shape_distance(mask: dict, xy: np.ndarray) -> np.ndarray:
    """Signed distance (px, < 0 inside) of points xy [..., 2] to a BrushSprites sprite mask: circle, box or convex
    polygon (for box and polygon the max over edges, exact inside and a lower bound of the distance outside)."""
    ((kind, value),) = mask.items()
    if kind == "circle":
        return np.linalg.norm(xy - value[:2], axis=-1) - value[2]
    if kind == "box":
        x0, y0, x1, y1 = value
        c, h = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), np.array([(x1 - x0) / 2, (y1 - y0) / 2])
        return (np.abs(xy - c) - h).max(axis=-1)
    v = np.asarray(value, np.float64)
    e = np.roll(v, -1, axis=0) - v
    n = np.stack([e[:, 1], -e[:, 0]], axis=-1) / np.linalg.norm(e, axis=-1, keepdims=True)
    n *= np.sign(((v - v.mean(axis=0)) * n).sum(axis=-1, keepdims=True))  # outward
    return (((xy[..., None, :] - v) * n).sum(axis=-1)).max(axis=-1)


def brush_sprites_truth(clip: dict, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth of query points [P, 2] (frame 0) of a `brush_sprites` clip -> xy [P, T, 2], visible, scored
    [P, T]. A point belongs to the top-most sprite whose mask holds it, else the stream (flow box) if there is one
    there, else the background; sprites move rigidly along their tracks, stream texture by pan + speed, background
    by the camera pan. Visible: in frame, not under a sprite drawn above it, and a stream point inside its box
    (texture leaving it is gone), a background point outside it."""
    p = np.asarray(points, np.float64)
    tracks = np.asarray(clip["tracks"], np.float64)  # [S, T, 2]
    S, T = tracks.shape[:2]
    width, height = clip["brushes"]["size"]
    extra = clip["brushes"]["brushes"][S:]
    pan = next((np.asarray(b["pan"]) for b in extra if b["mode"] == "camera"), np.zeros(2))
    flow = next((b for b in extra if b["mode"] == "flow"), None)
    masks = [b["mask"] for b in clip["brushes"]["brushes"][:S]]
    f = np.arange(T, dtype=np.float64)[:, None]
    moves = [tracks[s] - tracks[s, :1] for s in range(S)]  # [T, 2] each; camera included
    d0 = np.stack([_shape_distance(m, p) for m in masks], axis=1)  # [P, S]
    inside = d0 < 0
    layer = np.where(inside.any(axis=1), S - 1 - np.argmax(inside[:, ::-1], axis=1), -1)
    xy = p[:, None] + pan * f  # background
    box_distance = np.full((len(p), T), np.inf)
    stream = np.zeros(len(p), bool)
    if flow is not None:
        v = np.asarray(flow["direction"]) / np.linalg.norm(flow["direction"]) * flow["speed"]
        box = {"box": flow["mask"]["box"]}
        box_distance = _shape_distance(box, xy - pan * f)  # the box moves with the camera
        stream = (layer < 0) & (box_distance[:, 0] < 0)
        xy = np.where(stream[:, None, None], p[:, None] + (pan + v) * f, xy)
        box_distance = _shape_distance(box, xy - pan * f)
    for s in range(S):
        xy = np.where((layer == s)[:, None, None], p[:, None] + moves[s], xy)
    rims = np.stack([_shape_distance(m, xy - moves[s]) for s, m in enumerate(masks)], axis=1)  # [P, S, T]
    above = (np.arange(S)[None, :] > layer[:, None])[..., None]
    covered, near = (above & (rims < 0)).any(axis=1), (above & (np.abs(rims) < MARGIN)).any(axis=1)
    ground = layer < 0
    in_box = np.where(stream[:, None], box_distance < 0, np.where(ground[:, None], box_distance >= 0, True))
    near |= ground[:, None] & (np.abs(box_distance) < MARGIN)
    visible = _in_frame(xy, width, height, 0.0) & ~covered & in_box
    own = np.where(ground, np.inf, -d0[np.arange(len(p)), np.maximum(layer, 0)])
    clear = ~(ground[:, None] & (np.abs(d0) < MARGIN)).any(axis=1, keepdims=True)
    scored = (visible == _in_frame(xy, width, height, MARGIN)) & ~near & (own >= MARGIN)[:, None] & clear
    return xy, visible, scored


def structure(gray: np.ndarray, points: np.ndarray, window: int = 7) -> np.ndarray:
    """Shi-Tomasi cornerness at points [P, 2] of a grey image [H, W]: the smaller eigenvalue of the gradient's
    structure tensor averaged over a window x window box (grey levels² / px²); high where the texture pins a point
    down in both directions, ~0 on flat areas and straight edges."""
    gy, gx = np.gradient(gray.astype(np.float64))
    k = np.ones(window) / window
    box = lambda a: np.apply_along_axis(np.convolve, 1, np.apply_along_axis(np.convolve, 0, a, k, "same"), k, "same")  # noqa: E731
    xx, yy, xy = box(gx * gx), box(gy * gy), box(gx * gy)
    j, i = (np.clip(np.rint(points[:, a]).astype(int), 0, gray.shape[1 - a] - 1) for a in (0, 1))
    a, b, c = xx[i, j], yy[i, j], xy[i, j]
    return (a + b) / 2 - np.sqrt(((a - b) / 2) ** 2 + c * c)


def textured(frame: np.ndarray, points: np.ndarray, threshold: float = TEXTURED) -> np.ndarray:
    """bool [P]: points [P, 2] of an uint8 frame [H, W, 3] that lie on texture, judged at 64 px (`structure` of the
    frame area-resized so its short side is 64, ≥ threshold), so the test means the same at every size."""
    import cv2

    scale = 64 / min(frame.shape[:2])
    size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
    grey = np.asarray(frame, np.float32) @ np.float32([0.299, 0.587, 0.114])
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if scale != 1 else grey
    return structure(small, (np.asarray(points) + 0.5) * scale - 0.5) >= threshold


def score(xy: np.ndarray, visible: np.ndarray, truth_xy: np.ndarray, truth_visible: np.ndarray, scored: np.ndarray):
    """A tracker's answer xy [P, T, 2], visible [P, T] against the truth, over frames 1 … T-1 and the scored pairs:
    median and mean end-point error (px) where both say visible, visibility precision and recall, and counts."""
    s = scored[:, 1:]
    both = s & visible[:, 1:] & truth_visible[:, 1:]
    err = np.linalg.norm(xy[:, 1:] - truth_xy[:, 1:], axis=-1)[both]
    said, true = s & visible[:, 1:], s & truth_visible[:, 1:]
    return {
        "epe_median": float(np.median(err)) if err.size else float("nan"),
        "epe_mean": float(err.mean()) if err.size else float("nan"),
        "precision": float((said & true).sum() / max(said.sum(), 1)),
        "recall": float((said & true).sum() / max(true.sum(), 1)),
        "pairs": int(s.sum()),
        "hidden": int((s & ~truth_visible[:, 1:]).sum()),
    }
