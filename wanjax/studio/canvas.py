"""What the studio's canvas shows: the first frame with the draft's brushes and every track they compile to (the
`wanjax.motion.draw` overlay), the clicks of a shape still being drawn, and the validator's verdict on the file."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

from wanjax.errors import WanjaxError
from wanjax.motion import compile_brushes, load_brushes, mask_pixels
from wanjax.motion.draw import overlay_brushes
from wanjax.studio.draft import Draft, brush_file

DISPLAY = 512  # px: the canvas's longer side is upscaled (nearest) to about this, so 64-px frames can be drawn on
CLICK = (255, 255, 255)
PAINT = (255, 255, 255, 150)  # the paint layer: the region being painted, translucent white


def display_scale(size: tuple[int, int]) -> int:
    """The whole-number upscaling of a W x H frame on the canvas."""
    return max(1, DISPLAY // max(size))


def check(draft: Draft) -> tuple[dict | None, str | None]:
    """(the validated brush file, None), or (None, the validator's one-line message)."""
    try:
        return load_brushes(brush_file(draft)), None
    except WanjaxError as e:
        return None, str(e)


def _drawable(draft: Draft) -> Draft:
    """The draft without the brushes that are invalid on their own (a shape or path not finished yet)."""
    ok = tuple(b for b in draft.brushes if check(dataclasses.replace(draft, brushes=(b,)))[1] is None)
    return dataclasses.replace(draft, brushes=ok)


def preview(frame: np.ndarray, draft: Draft, max_tracks: int) -> tuple[np.ndarray, str | None]:
    """(canvas uint8 [H * s, W * s, 3] with s = display_scale, the validator's message or None) for the first frame
    uint8 [H, W, 3]. An invalid file still shows its valid brushes, so a half-drawn one hides nothing else."""
    spec, error = check(draft)
    scale = display_scale(draft.size)
    if spec is None:
        spec = brush_file(_drawable(draft))
    try:
        canvas = overlay_brushes(frame, spec, compile_brushes(spec, max_tracks=max_tracks), scale)
    except WanjaxError:  # valid one by one, not together (a second camera): the frame alone, the message says why
        canvas = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    pending = draft.clicks
    if draft.brush is not None and len(draft.brush.get("path", ())) == 1:  # a path's first point: not a path yet
        pending = (*pending, tuple(draft.brush["path"][0]))
    return _clicks(canvas, pending, scale), error


def _clicks(canvas: np.ndarray, clicks: tuple, scale: int) -> np.ndarray:
    """The canvas with the pending clicks as ringed dots joined in order (a polygon's corners, a box's first corner,
    an arrow's tail)."""
    if not clicks:
        return canvas
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    pts = [((x + 0.5) * scale, (y + 0.5) * scale) for x, y in clicks]
    r = max(3.0, 0.4 * scale)
    if len(pts) > 1:
        draw.line(pts, fill=CLICK, width=max(1, scale // 4))
    for x, y in pts:
        draw.ellipse([x - r - 1, y - r - 1, x + r + 1, y + r + 1], fill=(16, 16, 16))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=CLICK)
    return np.asarray(img)


def paint_layers(frame: np.ndarray, draft: Draft, max_tracks: int) -> dict:
    """The paint editor's value for the current brush: the canvas of the other brushes as background, and one layer
    uint8 RGBA [H * s, W * s, 4] with the current brush's region (PAINT) to paint on or erase."""
    others = draft.brushes[: draft.current] + draft.brushes[draft.current + 1 :]
    background, _ = preview(frame, dataclasses.replace(draft, brushes=others, clicks=()), max_tracks)
    scale = display_scale(draft.size)
    layer = np.zeros((*background.shape[:2], 4), np.uint8)
    brush = draft.brush
    if brush is not None and "mask" in brush:
        mask = mask_pixels(brush["mask"], draft.size)
        layer[np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)] = PAINT
    return {"background": background, "layers": [layer], "composite": None}
