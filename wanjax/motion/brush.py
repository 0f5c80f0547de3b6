"""Motion brush files (version 1): load, validate with errors that name the brush and the field, rasterise masks.

The format is a contract (DESIGN.md "Motion brushes"). Pixels, x right, y down; pixel (row i, column j) is centred at
(x, y) = (j, i), so a W x H frame spans [-0.5, W - 0.5] x [-0.5, H - 0.5]. Frame 0 is the given image.

    {"version": 1, "size": [W, H], "frames": T, "brushes": [{"mode": ..., "mask": {...}, ...}, ...]}

T is 4k+1; at most 64 brushes. Fields by mode, defaults in brackets:
    every masked mode   mask, density [1.0] (> 0, relative number of track points), strength [1.0] (scales the
                        brush's displacement), name (optional text)
    path                path [[x, y], ...] (≥ 2 points, in frame); easing [linear] | ease-in | ease-out |
                        ease-in-out, or speed (px/frame along the path, stops at its end), not both
    sway                direction [dx, dy] (nonzero), amplitude (px, ≥ 0), period (frames, > 0), phase [0.0]
                        (radians), anchor [none] | top | bottom | left | right
    flow                direction [dx, dy] (nonzero), speed (px/frame, ≥ 0)
    static              nothing else
    camera              pan [[0, 0]] (px/frame), zoom [1.0] (scale per frame, > 0), density [1.0], name; no mask;
                        at most one camera brush
    tracks              points [[[x, y] per frame] per point] (explicit trajectories, e.g. from `wanjax tracks`;
                        each starts in frame, at most MAX_TRACK_POINTS), visible [[bool per frame] per point]
                        [all true; each true at frame 0], strength [1.0] (scales each point's displacement), kind
                        [path] (what the model takes them for: one of the painted modes; `wanjax tracks` writes the
                        clip's background as camera), name; no mask; the camera brush does not move them
A mask is exactly one of box [x0, y0, x1, y1], polygon [[x, y], ...] (≥ 3 distinct points), circle [cx, cy, r], or
rle {"size": [H, W], "counts": [...]} (COCO-style column-major run lengths, background first, summing to H·W). It
must contain at least one pixel centre.
"""

import json
import math
import numbers
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from wanjax.config import check_frame_count
from wanjax.errors import WanjaxError
from wanjax.model.motion import KINDS

VERSION = 1
MAX_BRUSHES = 64
MAX_TRACK_POINTS = 4096
MODES = KINDS  # the painted modes: the model knows each (its kind embedding's rows)
TRACKS = "tracks"  # explicit trajectories; the model sees them as their `kind` (default path: what a path compiles to)
FILE_MODES = (*MODES, TRACKS)  # every mode a brush file may use
EASINGS = ("linear", "ease-in-out", "ease-in", "ease-out")
ANCHORS = ("none", "top", "bottom", "left", "right")
MASKS = ("box", "polygon", "circle", "rle")
_TOP = ("version", "size", "frames", "brushes")
_MASKED = ("mode", "mask", "density", "strength", "name")
_FIELDS = {
    "path": (*_MASKED, "path", "easing", "speed"),
    "sway": (*_MASKED, "direction", "amplitude", "period", "phase", "anchor"),
    "flow": (*_MASKED, "direction", "speed"),
    "static": _MASKED,
    "camera": ("mode", "pan", "zoom", "density", "name"),
    TRACKS: ("mode", "points", "visible", "strength", "kind", "name"),
}
_REQUIRED = {
    "path": ("path",),
    "sway": ("direction", "amplitude", "period"),
    "flow": ("direction", "speed"),
    TRACKS: ("points",),
}
_UNMASKED = ("camera", TRACKS)


def _fail(where: str, problem: str, fix: str) -> NoReturn:
    raise WanjaxError(f"{where}: {problem}; {fix}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(where, f"expected a number, got {value!r}", "write a JSON number such as 1.5")
    if not math.isfinite(value):
        _fail(where, f"got {value!r}", "use a finite number (NaN and infinity are not allowed)")
    return float(value)


def _bounded(value: Any, where: str, low: float, strict: bool) -> float:
    """A finite number ≥ low (> low when strict)."""
    v = _number(value, where)
    if v < low or (strict and v == low):
        _fail(where, f"got {v:g}", f"use a number {'>' if strict else '≥'} {low:g}")
    return v


def _whole(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(where, f"expected a whole number, got {value!r}", f"write an integer ≥ {low}")
    if value < low:
        _fail(where, f"got {value}", f"use an integer ≥ {low}")
    return int(value)


def _list(value: Any, where: str, example: str, length: int | None = None, least: int = 0) -> list:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        _fail(where, f"expected a list, got {value!r}", f"write e.g. {example}")
    if (length is not None and len(value) != length) or len(value) < least:
        count = f"{length}" if length is not None else f"at least {least}"
        _fail(where, f"expected {count} values, got {len(value)} ({list(value)!r})", f"write e.g. {example}")
    return list(value)


def _numbers(value: Any, where: str, example: str, length: int) -> list[float]:
    return [_number(v, f"{where}[{k}]") for k, v in enumerate(_list(value, where, example, length))]


def _points(value: Any, where: str, least: int) -> list[list[float]]:
    points = _list(value, where, "[[10, 12], [30, 12]]", least=least)
    return [_numbers(p, f"{where}[{k}]", "[10, 12]", 2) for k, p in enumerate(points)]


def _direction(value: Any, where: str) -> list[float]:
    d = _numbers(value, where, "[1, 0]", 2)
    if d == [0.0, 0.0]:
        _fail(where, "got [0, 0], which has no direction", "use a nonzero vector [dx, dy] such as [1, 0]")
    return d


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        _fail(where, f"got {value!r}", f"use one of {', '.join(allowed)}")
    return value


def _keys(raw: Any, where: str, allowed: tuple[str, ...], example: str) -> dict:
    """`raw` as a dict whose keys are all in `allowed` (where = "" for the top level)."""
    if not isinstance(raw, dict):
        _fail(where or "top level", f"expected an object, got {raw!r}", f"write e.g. {example}")
    for key in raw:
        if key not in allowed:
            _fail(f"{where}.{key}" if where else str(key), "unknown field", f"the fields here are {', '.join(allowed)}")
    return raw


def _in_frame(point: list[float], where: str, width: int, height: int) -> None:
    x, y = point
    if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
        _fail(
            where,
            f"point [{x:g}, {y:g}] is outside the {width}x{height} frame",
            f"keep x in [-0.5, {width - 0.5:g}] and y in [-0.5, {height - 0.5:g}]",
        )


def _rle(raw: Any, where: str, width: int, height: int) -> dict:
    raw = _keys(raw, where, ("size", "counts"), '{"size": [H, W], "counts": [...]}')
    if "size" not in raw or "counts" not in raw:
        _fail(where, "needs both size and counts", '{"size": [H, W], "counts": [...]}')
    size = [_whole(v, f"{where}.size[{k}]", 1) for k, v in enumerate(_list(raw["size"], f"{where}.size", "[H, W]", 2))]
    if size != [height, width]:
        _fail(f"{where}.size", f"got {size}, but the frame is {width}x{height}", f"use [{height}, {width}] ([H, W])")
    counts = _list(raw["counts"], f"{where}.counts", "[0, 5, 59, 5, 4027]", least=1)
    counts = [_whole(v, f"{where}.counts[{k}]", 0) for k, v in enumerate(counts)]
    if sum(counts) != width * height:
        _fail(
            f"{where}.counts",
            f"the runs sum to {sum(counts)}, not H·W = {height * width}",
            "give column-major run lengths (background first) that cover every pixel",
        )
    return {"size": size, "counts": counts}


def _mask(raw: Any, where: str, width: int, height: int) -> dict:
    example = '{"box": [x0, y0, x1, y1]} or {"polygon": ...}, {"circle": [cx, cy, r]}, {"rle": ...}'
    raw = _keys(raw, where, MASKS, example)
    if len(raw) != 1:
        _fail(where, f"has {len(raw)} shapes ({', '.join(raw) or 'none'})", f"give exactly one: {example}")
    ((kind, value),) = raw.items()
    here = f"{where}.{kind}"
    if kind == "box":
        x0, y0, x1, y1 = value = _numbers(value, here, "[10, 12, 18, 20]", 4)
        if not (x0 < x1 and y0 < y1):
            _fail(here, f"got {value}", "need x0 < x1 and y0 < y1 in [x0, y0, x1, y1]")
        box = value
    elif kind == "circle":
        cx, cy, r = value = _numbers(value, here, "[48, 48, 10]", 3)
        if r <= 0:
            _fail(f"{here}[2]", f"radius {r:g}", "use a radius > 0 in [cx, cy, r]")
        box = [cx - r, cy - r, cx + r, cy + r]
    elif kind == "polygon":
        value = _points(value, here, 3)
        if len({tuple(p) for p in value}) < 3:
            _fail(here, f"has fewer than 3 distinct points ({value})", "give ≥ 3 distinct [x, y] corners")
        (x0, y0), (x1, y1) = np.min(value, axis=0), np.max(value, axis=0)
        box = [float(x0), float(y0), float(x1), float(y1)]
    else:
        value = _rle(value, here, width, height)
        box = [0, 0, width - 1, height - 1]
    if box[2] < -0.5 or box[0] > width - 0.5 or box[3] < -0.5 or box[1] > height - 0.5:
        _fail(
            here,
            f"{value} lies entirely outside the {width}x{height} frame",
            f"move it into x in [-0.5, {width - 0.5:g}], y in [-0.5, {height - 0.5:g}]",
        )
    mask = {kind: value}
    if not mask_pixels(mask, (width, height)).any():
        _fail(here, f"{value} contains no pixel centre", "make it larger; pixel (row i, col j) is at (x, y) = (j, i)")
    return mask


def _first_bad(value: Any, where: str, frames: int) -> NoReturn:
    """Raise the error of the first malformed trajectory of a `tracks` brush's points (value did not convert to a
    finite float array [P, T, 2])."""
    tracks = _list(value, where, "[[[10, 12], [11, 12], ...], ...]", least=1)
    for p, track in enumerate(tracks):
        here = f"{where}[{p}]"
        if len(_list(track, here, f"{frames} [x, y] positions, one per frame")) != frames:
            _fail(here, f"has {len(track)} positions but the clip has {frames} frames", "give one [x, y] per frame")
        for f, point in enumerate(track):
            _numbers(point, f"{here}[{f}]", "[10, 12]", 2)
    _fail(where, "could not be read as numbers", "write [[[x, y], ...], ...]")  # not reached: a check above fails


def _trajectories(raw: dict, where: str, frames: int, width: int, height: int) -> dict:
    """The `points` (and `visible`) of a tracks brush, checked: float [P, T, 2] finite, bool [P, T], every point in
    frame and visible at frame 0."""
    value = raw["points"]
    try:
        xy = np.asarray(value.tolist() if isinstance(value, np.ndarray) else value, np.float64)
    except (TypeError, ValueError):
        xy = None
    if xy is None or xy.ndim != 3 or xy.shape[1:] != (frames, 2) or len(xy) == 0 or not np.isfinite(xy).all():
        _first_bad(value, f"{where}.points", frames)
    if len(xy) > MAX_TRACK_POINTS:
        _fail(
            f"{where}.points",
            f"{len(xy)} trajectories",
            f"give at most {MAX_TRACK_POINTS} (e.g. wanjax tracks --points 1024)",
        )
    for p, start in enumerate(xy[:, 0]):
        _in_frame(list(start), f"{where}.points[{p}][0]", width, height)
    out = {"points": xy.tolist()}
    if "visible" in raw:
        seen = _list(raw["visible"], f"{where}.visible", "[[true, true, false, ...], ...]", length=len(xy))
        for p, row in enumerate(seen):
            row = _list(row, f"{where}.visible[{p}]", f"{frames} true/false values, one per frame", length=frames)
            bad = next((f for f, v in enumerate(row) if not isinstance(v, (bool, np.bool_))), None)
            if bad is not None:
                _fail(
                    f"{where}.visible[{p}][{bad}]", f"expected true or false, got {row[bad]!r}", "write true or false"
                )
            if not row[0]:
                _fail(
                    f"{where}.visible[{p}][0]", "is false", "a trajectory must be visible in frame 0 (the given image)"
                )
            seen[p] = [bool(v) for v in row]
        out["visible"] = seen
    return out


def _brush(raw: Any, where: str, width: int, height: int, frames: int) -> dict:
    if not isinstance(raw, dict):
        _fail(where, f"expected a brush object, got {raw!r}", 'write e.g. {"mode": "static", "mask": {...}}')
    if "mode" not in raw:
        _fail(f"{where}.mode", "missing", f"add one of {', '.join(FILE_MODES)}")
    mode = _choice(raw["mode"], f"{where}.mode", FILE_MODES)
    raw = _keys(raw, where, _FIELDS[mode], f"a {mode} brush")
    required = _REQUIRED.get(mode, ()) + (() if mode in _UNMASKED else ("mask",))
    for key in required:
        if key not in raw:
            _fail(f"{where}.{key}", "missing", f"a {mode} brush needs {', '.join(required)}")
    out: dict = {"mode": mode}
    if "name" in raw:
        if not isinstance(raw["name"], str):
            _fail(f"{where}.name", f"expected text, got {raw['name']!r}", 'write e.g. "tree"')
        out["name"] = raw["name"]
    if mode == TRACKS:
        out["strength"] = _number(raw.get("strength", 1.0), f"{where}.strength")
        out["kind"] = _choice(raw.get("kind", "path"), f"{where}.kind", MODES)
        return out | _trajectories(raw, where, frames, width, height)
    out["density"] = _bounded(raw.get("density", 1.0), f"{where}.density", 0.0, strict=True)
    if mode == "camera":
        out["pan"] = _numbers(raw.get("pan", [0.0, 0.0]), f"{where}.pan", "[0.5, 0]", 2)
        out["zoom"] = _bounded(raw.get("zoom", 1.0), f"{where}.zoom", 0.0, strict=True)
        return out
    out["mask"] = _mask(raw["mask"], f"{where}.mask", width, height)
    out["strength"] = _number(raw.get("strength", 1.0), f"{where}.strength")
    if mode == "path":
        out["path"] = _points(raw["path"], f"{where}.path", 2)
        for k, point in enumerate(out["path"]):
            _in_frame(point, f"{where}.path[{k}]", width, height)
        if "speed" in raw and "easing" in raw:
            _fail(f"{where}.speed", "given together with easing", "give easing (timing over the clip) or speed")
        if "speed" in raw:
            out["speed"] = _bounded(raw["speed"], f"{where}.speed", 0.0, strict=False)
        else:
            out["easing"] = _choice(raw.get("easing", "linear"), f"{where}.easing", EASINGS)
    elif mode == "sway":
        out["direction"] = _direction(raw["direction"], f"{where}.direction")
        out["amplitude"] = _bounded(raw["amplitude"], f"{where}.amplitude", 0.0, strict=False)
        out["period"] = _bounded(raw["period"], f"{where}.period", 0.0, strict=True)
        out["phase"] = _number(raw.get("phase", 0.0), f"{where}.phase")
        out["anchor"] = _choice(raw.get("anchor", "none"), f"{where}.anchor", ANCHORS)
    elif mode == "flow":
        out["direction"] = _direction(raw["direction"], f"{where}.direction")
        out["speed"] = _bounded(raw["speed"], f"{where}.speed", 0.0, strict=False)
    return out


def _read(src: str | Path | dict) -> tuple[Any, str]:
    """The parsed brush file and a name for it in errors."""
    if isinstance(src, dict):
        return src, "brush file"
    if isinstance(src, str) and src.lstrip()[:1] in ("{", "["):
        text, origin = src, "brush JSON"
    else:
        path = Path(src)
        if not path.is_file():
            raise WanjaxError(f"brush file {str(path)!r} not found; pass an existing .json path, JSON text or a dict")
        text, origin = path.read_text(), f"brush file {str(path)!r}"
    try:
        return json.loads(text), origin
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}"
        raise WanjaxError(f"{origin}: invalid JSON at {where}: {e.msg}; fix the syntax there") from None


def _validate(raw: Any, size: tuple[int, int] | None, frames: int | None) -> dict:
    raw = _keys(raw, "", _TOP, '{"version": 1, "size": [W, H], "frames": T, "brushes": [...]}')
    for key, example in zip(_TOP, ('"version": 1', '"size": [W, H]', '"frames": 17', '"brushes": [...]'), strict=True):
        if key not in raw:
            _fail(key, "missing", f"add {example}")
    if raw["version"] != VERSION or isinstance(raw["version"], bool):
        _fail("version", f"got {raw['version']!r}", f"this wanjax reads version {VERSION}")
    width, height = (_whole(v, f"size[{k}]", 1) for k, v in enumerate(_list(raw["size"], "size", "[64, 64]", 2)))
    if size is not None and (width, height) != tuple(size):
        _fail(
            "size",
            f"the brushes are drawn on a {width}x{height} image but the image is {size[0]}x{size[1]}",
            f"redraw them for size [{size[0]}, {size[1]}] or resize the image to {width}x{height}",
        )
    t = _whole(raw["frames"], "frames", 1)
    check_frame_count(t, "frames")
    if frames is not None and t != frames:
        _fail(
            "frames",
            f"the brush file has frames {t} but the video has {frames}",
            f'set "frames": {frames} in the brush file or make a {t}-frame video',
        )
    brushes = _list(raw["brushes"], "brushes", '[{"mode": "static", "mask": {...}}]')
    if len(brushes) > MAX_BRUSHES:
        _fail("brushes", f"{len(brushes)} brushes", f"use at most {MAX_BRUSHES} (merge masks that move alike)")
    out = [_brush(b, f"brushes[{i}]", width, height, t) for i, b in enumerate(brushes)]
    cameras = [i for i, b in enumerate(out) if b["mode"] == "camera"]
    if len(cameras) > 1:
        _fail(f"brushes[{cameras[1]}].mode", f"a second camera (the first is brushes[{cameras[0]}])", "keep one")
    return {"version": VERSION, "size": [width, height], "frames": t, "brushes": out}


def load_brushes(src: str | Path | dict, *, size: tuple[int, int] | None = None, frames: int | None = None) -> dict:
    """Read and fully validate a brush file: a path, JSON text or an already parsed dict.

    size (W, H) and frames, when given (the image's size, the video's frame count), must equal the file's. Returns
    the file normalised: numbers as floats, defaults filled in (density, strength, easing unless speed, phase,
    anchor, pan, zoom), JSON-serialisable. Every problem raises WanjaxError naming e.g. `brushes[2].direction`.
    """
    raw, origin = _read(src)
    try:
        return _validate(raw, size, frames)
    except WanjaxError as e:
        raise WanjaxError(f"{origin}: {e}") from None


def mask_pixels(mask: dict, size: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: which pixel centres (x, y) = (j, i) a mask (as validated by `load_brushes`) covers, for size
    (W, H). box: x0 ≤ x ≤ x1 and y0 ≤ y ≤ y1; circle: distance ≤ r; polygon: even-odd rule; rle: decoded."""
    width, height = size
    ((kind, value),) = mask.items()
    if kind == "rle":
        runs = np.repeat(np.arange(len(value["counts"])) % 2 == 1, value["counts"])
        return runs.reshape((height, width), order="F")
    x = np.arange(width, dtype=np.float64)[None, :]
    y = np.arange(height, dtype=np.float64)[:, None]
    if kind == "box":
        x0, y0, x1, y1 = value
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    if kind == "circle":
        cx, cy, r = value
        return (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    inside = np.zeros((height, width), bool)
    corners = np.asarray(value, np.float64)
    for (xa, ya), (xb, yb) in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        if ya != yb:  # a horizontal edge crosses no row
            crosses = (ya > y) != (yb > y)
            inside ^= crosses & (x < xa + (y - ya) * (xb - xa) / (yb - ya))
    return inside
