"""Procedural sprite videos with analytic ground truth: BrushSprites (motion brushes) and Sprites60 (long video).

Conventions (the brush file's, DESIGN.md "Motion brushes"): pixels, x right, y down; pixel (row i, column j) has
its centre at (x, y) = (j, i), so a frame spans [-0.5, W - 0.5] x [-0.5, H - 0.5]. Frame index f = 0 … T-1 is
time f / FPS seconds (961 frames = 60 s); the brush formulas take f itself: periods in frames, speeds and pans in
px/frame. Frame 0 is the given image, so every displacement is 0 there.

Ground truth, which `wanjax.motion` must reproduce from a BrushSprites brush dict for sprite s:

    tracks[s, f] = centre_s + D_s(f) + camera_offsets(pan)[f]

with centre_s the sprite's area centroid at frame 0 (= path[0] for a path brush, the centre of its circle / box /
triangle mask otherwise) and D_s from `path_offsets`, `sway_offsets` (rigid: anchor "none") or 0 (static). A `flow`
brush's box is fixed in the scene (so it moves with the camera) and the texture inside moves by speed px/frame
along its normalised direction, on top of the pan.

Sprites are regular shapes of equal area π r² (disc, axis-aligned square, equilateral triangle pointing up; in
BrushSprites at 64 px r is 4-7 px, bounding radii 4-11 px, and sprites never touch nor leave the frame), drawn with
analytic anti-aliasing (coverage = clamp(0.5 - signed distance, 0, 1)), which is symmetric about the centre, so the
coverage-weighted centroid is the track. Backgrounds and streams are grey: a pixel's chroma (colour minus its grey
mean) is exactly coverage × the sprite's chroma, which lets metrics find sprites by colour.
"""

import numpy as np

from wanjax.config import check_frame_count
from wanjax.errors import WanjaxError
from wanjax.motion.tracks import camera_offsets, path_offsets, sway_offsets

FPS = 16
SHAPES = ("disc", "square", "triangle")
SPRITE_EASINGS = ("linear", "ease-in-out")  # drawn by BrushSprites; adding easings would change every clip
# Six hues 60° apart at full saturation: any two sprites are told apart by the direction of their chroma.
PALETTE = np.array(
    [[230, 40, 40], [225, 215, 35], [40, 200, 60], [40, 200, 215], [50, 80, 235], [215, 50, 215]], np.uint8
)


def _polygon(shape: str, r: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Edge normals [n, 2], apothem and vertex offsets [n, 2] of a regular polygon of area π r²."""
    n = {"square": 4, "triangle": 3}[shape]
    apothem = r * np.sqrt(np.pi / (n * np.tan(np.pi / n)))
    angles = np.pi / 2 + 2 * np.pi * np.arange(n) / n  # first normal points down: a flat bottom edge
    normals = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    corner = apothem / np.cos(np.pi / n)
    vertices = corner * np.stack([np.cos(angles + np.pi / n), np.sin(angles + np.pi / n)], axis=-1)
    return normals, apothem, vertices


def bounding_radius(shape: str, r: float) -> float:
    """Radius of the smallest circle around a sprite of equal-area radius r."""
    return r if shape == "disc" else float(np.linalg.norm(_polygon(shape, r)[2][0]))


def _area(shape: str, r: float) -> float:
    """Summed coverage of a whole sprite: the mean area of its outlines offset by s ~ U(-1/2, 1/2)."""
    if shape == "disc":
        return np.pi * (r * r + 1 / 12)
    normals, apothem, _ = _polygon(shape, r)
    return len(normals) * np.tan(np.pi / len(normals)) * (apothem**2 + 1 / 12)


def _coverage(shape: str, r: float, centres: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased coverage [T, H, W] in [0, 1] of a sprite at `centres` [T, 2]."""
    c = centres.astype(np.float32)
    dx = np.arange(width, dtype=np.float32)[None, None, :] - c[:, 0, None, None]
    dy = np.arange(height, dtype=np.float32)[None, :, None] - c[:, 1, None, None]
    if shape == "disc":
        sdf = np.sqrt(dx * dx + dy * dy) - np.float32(r)
    else:
        normals, apothem, _ = _polygon(shape, r)
        sdf = np.max([nx * dx + ny * dy for nx, ny in normals.astype(np.float32)], axis=0) - np.float32(apothem)
    return np.clip(0.5 - sdf, 0.0, 1.0)


def _mask(shape: str, r: float, centre: np.ndarray) -> dict:
    """The brush mask that outlines a sprite (circle, box or polygon), in pixels."""
    cx, cy = (float(v) for v in centre)
    if shape == "disc":
        return {"circle": [cx, cy, float(r)]}
    _, apothem, vertices = _polygon(shape, r)
    if shape == "square":
        h = round(float(apothem), 3)
        return {"box": [cx - h, cy - h, cx + h, cy + h]}
    return {"polygon": np.round(vertices + centre, 3).tolist()}


def _texture(rng: np.random.Generator, n: int, wavelengths: tuple[float, float], base: float, amplitude: float):
    """A smooth random grey texture: base + amplitude · mean of n random plane waves (evaluate with `_shade`)."""
    k = rng.uniform(*wavelengths, n) ** -1.0
    theta = rng.uniform(0, 2 * np.pi, n)
    waves = np.stack([k * np.cos(theta), k * np.sin(theta), rng.uniform(0, 2 * np.pi, n)], axis=-1)
    return base, amplitude * np.sqrt(2 / n), waves.astype(np.float32)


def _shade(texture, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Texture value at scene coordinates x [..., 1, W], y [..., H, 1] -> [..., H, W]; analytic, so sub-pixel shifts
    are exact. cos(a + b) is expanded so the transcendentals run on the 1-D x and y arrays, not on every pixel."""
    base, amplitude, waves = texture
    total = 0.0
    for kx, ky, phase in waves:
        a, b = 2 * np.pi * kx * x + phase, 2 * np.pi * ky * y
        total = total + (np.cos(a) * np.cos(b) - np.sin(a) * np.sin(b))
    return base + amplitude * total


def _composite(background: np.ndarray, layers: list[np.ndarray], colors: np.ndarray) -> np.ndarray:
    """Grey background [T, H, W] with sprite coverages [T, H, W] painted over in order -> uint8 [T, H, W, 3]."""
    video = np.repeat(background[..., None], 3, axis=-1)
    for cov, color in zip(layers, colors.astype(np.float32), strict=True):
        inside = cov > 0  # elsewhere the update adds exactly 0: skipping it keeps every bit, in half the time
        video[inside] += cov[inside][:, None] * (color - video[inside])
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def _visible(layers: list[np.ndarray], areas: list[float]) -> np.ndarray:
    """bool [S, T]: at least half of each sprite is inside the frame and not covered by sprites drawn after it."""
    uncovered = np.ones_like(layers[0])
    seen = []
    for cov, area in zip(layers[::-1], areas[::-1], strict=True):
        seen.append((cov * uncovered).sum(axis=(1, 2)) / area)
        uncovered = uncovered * (1 - cov)
    return np.stack(seen[::-1]) >= 0.5


def _check_size(height: int, width: int, smallest: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if value < smallest:
            raise WanjaxError(f"{name}={value} is too small for the sprites; use {smallest} or more (e.g. 64)")


def _unit(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    return np.round([np.cos(angle), np.sin(angle)], 4)


def _sprite_brush(rng, kind: str, shape: str, r: float, lo: np.ndarray, hi: np.ndarray, frames: int, scale: float):
    """One sprite's brush and its displacement [T, 2]; the centre keeps within [lo, hi] (per axis) at every frame."""
    if kind == "path":
        for _ in range(50):  # re-draw paths too short to see or so long that sprites would cross
            path = np.round(rng.uniform(lo, hi, (int(rng.integers(2, 4)), 2)), 2)
            if 8 * scale <= np.linalg.norm(np.diff(path, axis=0), axis=1).sum() <= 32 * scale:
                break
        easing = str(rng.choice(SPRITE_EASINGS))
        brush = {"mode": "path", "mask": _mask(shape, r, path[0]), "path": path.tolist(), "easing": easing}
        return brush | {"strength": 1.0}, path[0], path_offsets(path, frames, easing)
    if kind == "sway":
        amplitude = round(float(rng.uniform(1.5, 4.0) * scale), 2)
        centre = np.round(rng.uniform(lo + amplitude, hi - amplitude), 2)
        direction, period, phase = _unit(rng), int(rng.integers(8, 25)), float(rng.choice([0.0, np.pi]))
        brush = {"mode": "sway", "mask": _mask(shape, r, centre), "direction": direction.tolist()}
        brush |= {"amplitude": amplitude, "period": period, "phase": phase, "anchor": "none"}
        return brush, centre, sway_offsets(direction, amplitude, period, phase, frames)
    centre = np.round(rng.uniform(lo, hi), 2)
    return {"mode": "static", "mask": _mask(shape, r, centre)}, centre, np.zeros((frames, 2))


def _touches(track: np.ndarray, radius: float, others: list[np.ndarray], other_radii: list[float]) -> bool:
    """Whether a sprite's track [T, 2] comes within its rim (1 px) of any other sprite's in any frame."""
    return any(
        np.linalg.norm(track - t, axis=-1).min() < radius + r + 2 for t, r in zip(others, other_radii, strict=True)
    )


def _stream(rng: np.random.Generator, sx: np.ndarray, sy: np.ndarray, f: np.ndarray, scale: float):
    """A `flow` brush over a box whose texture scrolls, and its grey layer (coverage and value, [T, H, W]), given the
    scene coordinates sx [T, 1, W], sy [T, H, 1] of each pixel and the frame index f [T, 1, 1]."""
    height, width = sy.shape[1], sx.shape[2]
    w, h = (int(v) for v in np.round(rng.uniform(16, 32, 2) * scale))
    x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    direction, speed = _unit(rng), round(float(rng.uniform(0.5, 2.0) * scale), 2)
    sdf = np.maximum(np.abs(sx - (x0 + w / 2)) - w / 2, np.abs(sy - (y0 + h / 2)) - h / 2)
    vx, vy = (speed * direction / np.linalg.norm(direction)).astype(np.float32)  # px/frame along the direction
    value = _shade(_texture(rng, 4, (3.0, 6.0), 100.0, 40.0), sx - f * vx, sy - f * vy)
    brush = {"mode": "flow", "mask": {"box": [x0, y0, x0 + w, y0 + h]}, "direction": direction.tolist(), "speed": speed}
    return brush, np.clip(0.5 - sdf, 0.0, 1.0), value


def brush_sprites(
    seed: int, frames: int = 17, height: int = 64, width: int = 64, *, flow_prob: float = 0.5, camera_prob: float = 0.5
) -> dict:
    """One BrushSprites clip: 1-3 sprites moved by path / sway / static brushes on a textured grey background, with
    probability flow_prob a scrolling stream (flow), with camera_prob a camera pan. Sizes scale with
    min(height, width) / 64; a sprite that cannot be placed clear of the others (rare) is left out.

    Returns video uint8 [T, H, W, 3]; brushes (a brush file dict, version 1; brushes[s] moves sprite s, then the
    flow and camera brushes if any); tracks float32 [S, T, 2] (sprite centres, x y in pixels, camera included);
    visible bool [S, T]; kinds, shapes (str lists); colors uint8 [S, 3]; radii float32 [S] (bounding circles).
    """
    check_frame_count(frames, "frames")
    _check_size(height, width, 32)
    rng = np.random.default_rng(seed)
    scale, size = min(height, width) / 64, np.array([width, height], np.float64)
    n = int(rng.integers(1, 4))
    colors = PALETTE[rng.choice(len(PALETTE), n, replace=False)]
    shapes = [str(s) for s in rng.choice(SHAPES, n)]
    kinds = [str(k) for k in rng.choice(["path", "sway", "static"], n, p=[0.5, 0.3, 0.2])]
    r = np.round(rng.uniform(4.0, 7.0, n) * scale, 2)
    radii = np.array([bounding_radius(s, v) for s, v in zip(shapes, r, strict=True)])
    # The whole pan stays under 8·scale px whatever the clip length, so sprites can stay in frame.
    camera = rng.random() < camera_prob
    pan = np.round(rng.uniform(-8, 8, 2) * scale / max(frames - 1, 1), 3) if camera else np.zeros(2)
    shift = camera_offsets(pan, frames)
    keep, brushes, tracks = [], [], []
    for i, (kind, shape, rs, rb) in enumerate(zip(kinds, shapes, r, radii, strict=True)):
        lo, hi = rb + 1 - shift.min(axis=0), size - 2 - rb - shift.max(axis=0)
        # Sprites never touch (occlusion would blur centroids and hide masks): re-draw, or drop after 50 tries.
        for _ in range(50):
            brush, centre, offsets = _sprite_brush(rng, kind, shape, rs, lo, hi, frames, scale)
            if not _touches(centre + offsets + shift, rb, tracks, radii[keep]):
                keep.append(i)
                brushes.append(brush)
                tracks.append(centre + offsets + shift)
                break
    tracks, colors, r, radii = np.stack(tracks), colors[keep], r[keep], radii[keep]
    shapes, kinds = [shapes[i] for i in keep], [kinds[i] for i in keep]
    # Scene coordinates of each pixel: the camera moves the whole scene by f·pan.
    f = np.arange(frames, dtype=np.float32)[:, None, None]
    sx = np.arange(width, dtype=np.float32)[None, None, :] - f * np.float32(pan[0])
    sy = np.arange(height, dtype=np.float32)[None, :, None] - f * np.float32(pan[1])
    background = _shade(_texture(rng, 6, (12.0, 40.0), 128.0, 30.0), sx, sy)
    if rng.random() < flow_prob:
        brush, cov, value = _stream(rng, sx, sy, f, scale)
        background = background + cov * (value - background)
        brushes.append(brush)
    if camera:
        brushes.append({"mode": "camera", "pan": pan.tolist(), "zoom": 1.0})
    layers = [_coverage(s, v, t, height, width) for s, v, t in zip(shapes, r, tracks, strict=True)]
    return {
        "video": _composite(background, layers, colors),
        "brushes": {"version": 1, "size": [width, height], "frames": frames, "brushes": brushes},
        "tracks": tracks.astype(np.float32),
        "visible": _visible(layers, [_area(s, v) for s, v in zip(shapes, r, strict=True)]),
        "kinds": kinds,
        "shapes": shapes,
        "colors": colors,
        "radii": radii.astype(np.float32),
    }


def _reflect(x: np.ndarray, lo, hi) -> np.ndarray:
    """Where a point that moved freely to x is once it reflects off walls at lo and hi (a triangle wave)."""
    span = hi - lo
    u = np.mod(x - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def _bounce(start: np.ndarray, velocity: np.ndarray, f: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Positions [T, 2] of a point moving at `velocity` px/frame between walls lo and hi [2]."""
    return _reflect(start + f[:, None] * velocity, lo, hi)


def _leave_and_return(rng, f: np.ndarray, frames: int, width: int, radius: float, lo: float, hi: float, scale: float):
    """x [T] of a sprite whose centre crosses the left (or right) edge outwards at frame round((T-1)/6) (10 s of 60)
    and inwards at round(2(T-1)/3) (40 s); in between it waits just outside, after that it bounces."""
    f_out, f_in = round((frames - 1) / 6), round(2 * (frames - 1) / 3)
    edge, parked = -0.5, -1.5 - radius  # parked: no pixel is covered
    x0 = rng.uniform(lo, hi)
    leaving = np.maximum(x0 + (edge - x0) * f / max(f_out, 1), parked)
    entering = edge + rng.uniform(0.15, 0.35) * scale * (f - f_in)
    entering = np.where(entering < lo, np.maximum(entering, parked), _reflect(entering, lo, hi))
    x = np.where(f < (f_out + f_in) / 2, leaving, entering)
    return x if rng.random() < 0.5 else width - 1 - x


def sprites60(seed: int, frames: int = 961, height: int = 32, width: int = 32) -> dict:
    """One Sprites60 clip (default 60 s at 16 fps): 2-4 sprites of fixed colour and shape on a static textured grey
    background; each bounces off the walls or orbits a point, except the last, which is drawn on top, leaves the
    frame at 1/6 of the clip (10 s) and comes back at 2/3 (40 s). Sizes scale with min(height, width) / 32.

    Returns video uint8 [T, H, W, 3]; tracks float32 [S, T, 2] (centres, x y in pixels; off-frame while away);
    visible bool [S, T] (≥ half the sprite in frame and uncovered); kinds ("bounce" | "orbit" | "leave") and shapes
    (str lists); colors uint8 [S, 3]; radii float32 [S] (bounding circles).
    """
    check_frame_count(frames, "frames")
    _check_size(height, width, 16)
    rng = np.random.default_rng(seed)
    scale, size = min(height, width) / 32, np.array([width, height], np.float64)
    n = int(rng.integers(2, 5))
    colors = PALETTE[rng.choice(len(PALETTE), n, replace=False)]
    shapes = [str(s) for s in rng.choice(SHAPES, n)]
    kinds = [str(k) for k in rng.choice(["bounce", "orbit"], n - 1)] + ["leave"]
    r = np.round(rng.uniform(3.0, 4.5, n) * scale, 2)
    radii = np.array([bounding_radius(s, v) for s, v in zip(shapes, r, strict=True)])
    f = np.arange(frames, dtype=np.float64)
    tracks = []
    for kind, rb in zip(kinds, radii, strict=True):
        lo, hi = rb + 0.5 + np.zeros(2), size - 1.5 - rb  # walls one pixel inside the frame's edges
        if kind == "bounce":
            velocity = rng.uniform(0.15, 0.4) * scale * _unit(rng)
            tracks.append(_bounce(rng.uniform(lo, hi), velocity, f, lo, hi))
        elif kind == "orbit":
            rho = rng.uniform(0.25, 0.5) * (hi - lo).min()
            centre, omega = rng.uniform(lo + rho, hi - rho), rng.choice([-1, 1]) * 2 * np.pi / rng.uniform(48, 160)
            angle = omega * f + rng.uniform(0, 2 * np.pi)
            tracks.append(centre + rho * np.stack([np.cos(angle), np.sin(angle)], axis=-1))
        else:
            y = _bounce(rng.uniform(lo, hi), rng.uniform(0.1, 0.3) * scale * _unit(rng), f, lo, hi)[:, 1]
            tracks.append(np.stack([_leave_and_return(rng, f, frames, width, rb, lo[0], hi[0], scale), y], axis=-1))
    tracks = np.stack(tracks)
    texture = _texture(rng, 6, (8.0, 24.0), 128.0, 30.0)
    still = _shade(texture, np.arange(width, dtype=np.float32)[None, :], np.arange(height, dtype=np.float32)[:, None])
    background = np.broadcast_to(still.astype(np.float32), (frames, height, width))
    layers = [_coverage(s, v, t, height, width) for s, v, t in zip(shapes, r, tracks, strict=True)]
    return {
        "video": _composite(background, layers, colors),
        "tracks": tracks.astype(np.float32),
        "visible": _visible(layers, [_area(s, v) for s, v in zip(shapes, r, strict=True)]),
        "kinds": kinds,
        "shapes": shapes,
        "colors": colors,
        "radii": radii.astype(np.float32),
    }
