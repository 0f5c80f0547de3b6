"""The brush file being painted in the studio, and every edit to it as a pure function: Draft in, Draft out.

A Draft holds brush dicts in the brush-file format (`wanjax.motion.brush`), possibly incomplete while being drawn (a
path brush before its path is clicked); `brush_file` is the version-1 file they make, which `load_brushes` judges.
Clicks arrive as source pixels (x, y) = (column, row). Every arrow means "where this goes over the whole clip":

    path     each click adds a point to the path (the region follows it over the clip)
    sway     tail -> head: direction, amplitude = half its length (the full swing)
    flow     tail -> head: direction, speed = length / (T - 1) px/frame
    camera   tail -> head: pan = (head - tail) / (T - 1) px/frame
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from wanjax.motion.brush import MODES

TOOLS = ("box", "circle", "polygon", "arrow")
# Fields a brush gets when it takes a mode, unless it has them already (strength and density stay; camera: no mask).
DEFAULTS = {
    "path": {"easing": "linear"},
    "sway": {"direction": [1.0, 0.0], "amplitude": 3.0, "phase": 0.0, "anchor": "none"},
    "flow": {"direction": [1.0, 0.0], "speed": 1.0},
    "static": {},
    "camera": {"pan": [0.5, 0.0], "zoom": 1.0},
}
_CLOSE = 1.5  # px: a polygon click this near its first corner closes it
# The modes with a mask, and those an arrow sets; other brushes of a loaded file (`tracks`) stay as they are.
REGIONS = ("path", "sway", "flow", "static")
ARROWS = ("path", "sway", "flow", "camera")


@dataclasses.dataclass(frozen=True)
class Draft:
    """size (W, H) and frames T of the brush file; brushes in file order; current: the brush being edited (-1: none);
    clicks: the corners / tail clicked so far of the shape or arrow being drawn."""

    size: tuple[int, int]
    frames: int
    brushes: tuple[dict, ...] = ()
    current: int = -1
    clicks: tuple[tuple[float, float], ...] = ()

    @property
    def brush(self) -> dict | None:
        return self.brushes[self.current] if 0 <= self.current < len(self.brushes) else None


def brush_file(draft: Draft) -> dict:
    """The version-1 brush file of the draft (not yet validated)."""
    return {"version": 1, "size": list(draft.size), "frames": draft.frames, "brushes": [dict(b) for b in draft.brushes]}


def from_file(spec: dict) -> Draft:
    """A draft of a validated brush file (`load_brushes`' output), its first brush current."""
    brushes = tuple(dict(b) for b in spec["brushes"])
    return Draft(tuple(spec["size"]), spec["frames"], brushes, 0 if brushes else -1)


def labels(draft: Draft) -> list[tuple[str, int]]:
    """(label, index) of each brush for a picker: "1 · path", or its name when it has one."""
    return [(f"{i + 1} · {b.get('name') or b['mode']}", i) for i, b in enumerate(draft.brushes)]


def _replace_current(draft: Draft, brush: dict) -> Draft:
    brushes = list(draft.brushes)
    brushes[draft.current] = brush
    return dataclasses.replace(draft, brushes=tuple(brushes))


def add_brush(draft: Draft, mode: str = "static") -> Draft:
    """A new brush of `mode` (no mask yet), made current."""
    brushes = (*draft.brushes, with_mode({}, mode, draft.frames))
    return dataclasses.replace(draft, brushes=brushes, current=len(brushes) - 1, clicks=())


def delete_brush(draft: Draft) -> Draft:
    """Without the current brush; the one before it (or the new first) becomes current."""
    if draft.brush is None:
        return draft
    brushes = draft.brushes[: draft.current] + draft.brushes[draft.current + 1 :]
    current = min(max(draft.current - 1, 0), len(brushes) - 1)
    return dataclasses.replace(draft, brushes=brushes, current=current, clicks=())


def select(draft: Draft, index: int) -> Draft:
    """Brush `index` made current (out of range: unchanged), pending clicks dropped."""
    if not 0 <= index < len(draft.brushes):
        return draft
    return dataclasses.replace(draft, current=index, clicks=())


def with_mode(brush: dict, mode: str, frames: int) -> dict:
    """The brush as a `mode` brush: its name, density and (unless camera) mask and strength kept; its fields kept when
    the mode is unchanged, a sway / flow direction kept across the two; the mode's defaults for the rest (a sway's
    period: the clip, T - 1 frames)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    keep = ("name", "density") if mode == "camera" else ("name", "density", "mask", "strength")
    out = {"mode": mode} | {k: brush[k] for k in keep if k in brush}
    same = brush.get("mode") == mode
    defaults = DEFAULTS[mode] | ({"period": float(max(frames - 1, 1))} if mode == "sway" else {})
    for key, value in defaults.items():
        out[key] = brush.get(key, value) if same or key == "direction" else value
    if same and mode == "path":
        out |= {k: brush[k] for k in ("path", "speed") if k in brush}
        if "speed" in out:
            out.pop("easing")
    return out


def set_mode(draft: Draft, mode: str) -> Draft:
    """The current brush switched to `mode` (a new brush if there is none)."""
    if draft.brush is None:
        return add_brush(draft, mode)
    return dataclasses.replace(_replace_current(draft, with_mode(draft.brush, mode, draft.frames)), clicks=())


def set_fields(draft: Draft, fields: dict) -> Draft:
    """The current brush with `fields` written in (only those its mode takes; a None value removes the field). For a
    path, a speed > 0 replaces the easing and a speed of None or 0 brings the easing back."""
    brush = draft.brush
    if brush is None:
        return draft
    mode = brush["mode"]
    if mode not in DEFAULTS:  # a brush the studio does not edit (e.g. explicit `tracks` from a loaded file)
        return draft
    allowed = set(DEFAULTS[mode]) | {"name"} | (set() if mode == "camera" else {"strength"})
    allowed |= {"path": {"speed"}, "sway": {"period"}}.get(mode, set())
    out = dict(brush)
    for key, value in fields.items():
        if key not in allowed:
            continue
        if value is None or value == "" or (key == "speed" and mode == "path" and value == 0):
            out.pop(key, None)
        else:
            out[key] = value
    if mode == "path":
        if "speed" in out:
            out.pop("easing", None)
        else:
            out.setdefault("easing", "linear")
    return _replace_current(draft, out)


def snap(index: tuple[float, float], scale: int, size: tuple[int, int]) -> tuple[float, float]:
    """The source pixel (x, y) under a click at display pixel `index` (u, v) of a canvas upscaled by `scale`: clicks
    land on pixel centres, so a brush drawn at any zoom is the same file."""
    return tuple(float(min(max(int(c // scale), 0), n - 1)) for c, n in zip(index, size, strict=True))


def _round(v: float) -> float:
    return round(float(v), 2)


def click(draft: Draft, tool: str, xy: tuple[float, float]) -> Draft:
    """The draft after a click at source pixel xy with `tool` (TOOLS). A mask tool with no current brush starts a
    static one; an arrow needs a brush (unchanged otherwise; a static brush has no arrow)."""
    if tool not in TOOLS:
        raise ValueError(f"tool {tool!r} is not one of {TOOLS}")
    if draft.brush is None:
        if tool == "arrow":
            return draft
        draft = add_brush(draft)
    brush, clicks = draft.brush, (*draft.clicks, tuple(xy))
    if tool == "arrow":
        return _arrow(draft, brush, clicks)
    if brush["mode"] not in REGIONS:  # the camera moves the whole frame: no region
        return draft
    mask = None
    if tool == "box" and len(clicks) == 2:
        (xa, ya), (xb, yb) = clicks
        mask, clicks = {"box": [min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)]}, ()
    elif tool == "circle" and len(clicks) == 2:
        (cx, cy), (ex, ey) = clicks
        mask, clicks = {"circle": [cx, cy, _round(max(math.hypot(ex - cx, ey - cy), 0.5))]}, ()
    elif tool == "polygon":
        first = clicks[0]
        if len(clicks) > 3 and math.hypot(xy[0] - first[0], xy[1] - first[1]) <= _CLOSE:
            mask, clicks = {"polygon": [list(p) for p in clicks[:-1]]}, ()  # closed: done
        elif len(clicks) >= 3:
            mask = {"polygon": [list(p) for p in clicks]}
    if mask is not None:
        draft = _replace_current(draft, brush | {"mask": mask})
    return dataclasses.replace(draft, clicks=clicks)


def _arrow(draft: Draft, brush: dict, clicks: tuple) -> Draft:
    mode, span = brush["mode"], max(draft.frames - 1, 1)
    if mode == "path":  # every click extends the path
        return _replace_current(draft, brush | {"path": [*brush.get("path", []), list(clicks[-1])]})
    if mode not in ARROWS:
        return draft
    if len(clicks) < 2:
        return dataclasses.replace(draft, clicks=clicks)
    d = np.subtract(clicks[1], clicks[0])
    length = float(np.hypot(*d))
    if length == 0:  # a click on the tail: start again from there
        return dataclasses.replace(draft, clicks=clicks[:1])
    unit = [round(float(c) / length, 4) for c in d]
    fields = {"camera": {"pan": [_round(d[0] / span), _round(d[1] / span)]}}.get(mode, {"direction": unit})
    if mode == "sway":
        fields["amplitude"] = _round(length / 2)
    elif mode == "flow":
        fields["speed"] = _round(length / span)
    return dataclasses.replace(_replace_current(draft, brush | fields), clicks=())


def clear_path(draft: Draft) -> Draft:
    """The current path brush without its path (to click a new one)."""
    brush = draft.brush
    if brush is None or "path" not in brush:
        return dataclasses.replace(draft, clicks=())
    return dataclasses.replace(_replace_current(draft, {k: v for k, v in brush.items() if k != "path"}), clicks=())


def drop_clicks(draft: Draft) -> Draft:
    """Without the clicks of an unfinished shape or arrow (another tool was picked)."""
    return dataclasses.replace(draft, clicks=())


def set_frames(draft: Draft, frames: int) -> Draft:
    return dataclasses.replace(draft, frames=frames)


def rle(mask: np.ndarray) -> dict:
    """bool [H, W] -> {"size": [H, W], "counts": [...]}: COCO-style column-major run lengths, background first (the
    brush file's rle mask; `mask_pixels` decodes it)."""
    flat = np.asarray(mask, bool).ravel(order="F")
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def set_mask(draft: Draft, mask: np.ndarray) -> Draft:
    """The current brush's region painted as bool [H, W] (rle); an empty one removes the mask."""
    if draft.brush is None:
        if not mask.any():
            return draft
        draft = add_brush(draft)
    brush = {k: v for k, v in draft.brush.items() if k != "mask"}
    if brush["mode"] not in REGIONS:
        return draft
    return _replace_current(draft, brush | ({"mask": {"rle": rle(mask)}} if mask.any() else {}))


def painted_mask(alpha: np.ndarray, scale: int) -> np.ndarray:
    """bool [H, W] of a painted layer's alpha [H * scale, W * scale]: the pixels at least half painted over."""
    h, w = alpha.shape[0] // scale, alpha.shape[1] // scale
    blocks = (np.asarray(alpha)[: h * scale, : w * scale] > 0).reshape(h, scale, w, scale)
    return blocks.mean(axis=(1, 3)) >= 0.5
