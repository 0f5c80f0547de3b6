"""How well a video follows its motion brushes, measured on BrushSprites clips (DESIGN.md "Quality bars").

Sprites are found by colour: backgrounds and streams are grey, so a pixel's chroma (colour minus its grey mean) is
coverage x its sprite's chroma, and each sprite of a clip has its own saturated hue. Positions are pixels, x right,
y down, pixel (row i, column j) centred at (x, y) = (j, i), as in `wanjax.data.sprites`.

Per sprite s with ground-truth track g [T, 2] and the video's colour centroid p [T, 2]:
* EPE: mean over frames 1 … T-1 where s is visible of |p - g| px; a frame where s is not found counts as the frame
  diagonal (a lost sprite is as wrong as it gets). Frame 0 is the given image, so it is left out.
* success: EPE ≤ max(0.75, 0.15 · max_f |g[f] - g[0]|): sub-pixel for small motions, 15 % for long drags.
* direction cosine (path, sway): mean over frames with |g[f] - g[0]| > 1 px of cos(p[f] - p[0], g[f] - g[0]);
  a frame counts 0 where s is not found (there or in frame 0) or p did not move.
* static leakage (static): path length of p - g over consecutive visible frames, per step, px/frame: motion that
  the ground truth (camera pan included) does not explain; a step with s lost at either end counts as the diagonal.
Video PSNR against the ground-truth clip (frames 1 … T-1, the given frame 0 left out), from the mean squared error
pooled over the clips of a group: all, those without a flow brush (what enters a stream is new texture), those with
one, and "plain" ones (neither flow nor camera). Copying frame 0 is the reference (`copy_first_frame`).
Per clip with a `flow` brush, region flow error: mean over frame pairs of |estimated - true| texture velocity
px/frame inside the stream's box (see `region_flow_error`).
"""

import numpy as np

# A pixel shows a sprite when its chroma along the sprite's hue passes this fraction of the sprite's own: well above
# uint8 rounding and noise (σ = 8 grey levels gives ~7 along a hue; sprite chromas are 123-155).
CHROMA_FRACTION = 0.25
# Region flow: the largest shift looked for (BrushSprites streams move ≤ 2 px/frame, pans add ≤ 0.5) and how many
# registrations each frame pair gets (the first finds the integer shift, the rest remove the window's pull).
SEARCH_RADIUS = 3.0
REGISTRATIONS = 6


def _chroma(video: np.ndarray) -> np.ndarray:
    """float32 [..., 3] colour minus its grey mean (0 on grey backgrounds and streams)."""
    v = np.asarray(video, np.float32)
    return v - v.mean(axis=-1, keepdims=True)


def _sprite_weights(video: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """float32 [T, H, W, S]: how much of sprite s a pixel shows, in chroma units. Where the pixel's chroma is closest
    in hue to sprite s's among the clip's sprites, its projection on that hue minus CHROMA_FRACTION of the sprite's
    chroma, if positive; 0 elsewhere. Subtracting rather than cutting keeps the weight continuous as a sprite moves
    by sub-pixel steps, so rim pixels crossing the threshold do not make centroids jitter (static leakage on the
    ground truth: 0.024 px/frame, vs 0.036 for a hard cut)."""
    c = _chroma(colors)  # [S, 3]
    norm = np.linalg.norm(c, axis=-1)
    proj = _chroma(video) @ (c / norm[:, None]).T  # [T, H, W, S]; for one pixel the largest is the closest hue
    closest = proj.argmax(axis=-1)[..., None] == np.arange(len(c))
    return np.where(closest, np.maximum(proj - CHROMA_FRACTION * norm, 0.0), 0.0).astype(np.float32)


def sprite_centroids(video: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour centroid of each sprite in each frame.

    video uint8 [T, H, W, 3]; colors uint8 [S, 3] (the clip's sprite colours). Returns xy float64 [S, T, 2] (x, y
    px; NaN where not found), the `_sprite_weights`-weighted mean of pixel centres, and found bool [S, T]: the
    weights add up to at least one fully covered pixel's. On the ground truth a pixel's weight is a function of its
    coverage, whose level sets are the sprite's outline offset, all centred on the track.
    """
    w = _sprite_weights(video, colors).astype(np.float64)
    mass = w.sum(axis=(1, 2))  # [T, S]
    height, width = w.shape[1:3]
    x = np.einsum("thws,w->ts", w, np.arange(width, dtype=np.float64))
    y = np.einsum("thws,h->ts", w, np.arange(height, dtype=np.float64))
    found = mass >= (1 - CHROMA_FRACTION) * np.linalg.norm(_chroma(colors), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xy = np.stack([x, y], axis=-1) / mass[..., None]
    return np.where(found[..., None], xy, np.nan).transpose(1, 0, 2), found.T


def _hann(n: int, shift: float = 0.0) -> np.ndarray:
    """Hann window [n] over pixel centres, moved by `shift` px: evaluated, not resampled (0 beyond its ends)."""
    u = np.clip((np.arange(n) + 0.5 - shift) / n, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(2 * np.pi * u)


def _neighbours(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """x's previous and next entries along axis, edges held."""
    i = np.arange(x.shape[axis])
    return np.take(x, np.maximum(i - 1, 0), axis=axis), np.take(x, np.minimum(i + 1, len(i) - 1), axis=axis)


def _moved(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """x [h, w] with its content moved by r = (dx, dy), |r| ≤ 1 each: linear interpolation, edges held."""
    for axis, amount in ((1, r[0]), (0, r[1])):
        before, after = _neighbours(x, axis)
        x = (1 - abs(amount)) * x + abs(amount) * (before if amount > 0 else after)
    return x


def _sprite_free(sprite: np.ndarray) -> np.ndarray:
    """float [h, w] in [0, 1]: 0 on and next to sprite pixels (bool [h, w]), rising smoothly to 1 away from them.
    Grown by one pixel to catch anti-aliased rims below the chroma threshold; smooth (two [1, 2, 1] / 4 blurs) so the
    weight's autocorrelation has no cusp at zero shift, which would pull estimates towards 0."""
    for axis in (0, 1):
        before, after = _neighbours(sprite, axis)
        sprite = sprite | before | after
    hole = sprite.astype(np.float64)
    for _ in range(2):
        for axis in (0, 1):
            before, after = _neighbours(hole, axis)
            hole = (before + 2 * hole + after) / 4
    return 1.0 - hole


def correlation_shift(a: np.ndarray, b: np.ndarray, radius: float = SEARCH_RADIUS) -> np.ndarray:
    """Shift (dx, dy) float64 [2] with b(x) ≈ a(x - d) for windowed, zero-mean images a, b [h, w]: the peak of their
    FFT cross-correlation within `radius` px, refined by evaluating the correlation's inverse DFT (exact band-limited
    interpolation; the matrix-multiply DFT of Guizar-Sicairos et al. 2008) on a 21 x 21 grid of step 0.1 px around
    it, then of step 0.01 px around the best point, then by a parabola through the best point and its neighbours.

    Not whitened (phase correlation proper): a stream's texture is a few plane waves, so whitening weighs hundreds
    of noise-only frequencies like the handful that carry the motion (measured: ~1 px/frame error vs 0.01)."""
    h, w = a.shape
    spectrum = np.fft.fft2(b) * np.conj(np.fft.fft2(a))
    dy, dx = np.fft.fftfreq(h, 1 / h), np.fft.fftfreq(w, 1 / w)  # integer shifts in FFT order
    near = dy[:, None] ** 2 + dx[None, :] ** 2 <= radius**2
    iy, ix = np.unravel_index(np.argmax(np.where(near, np.fft.ifft2(spectrum).real, -np.inf)), (h, w))
    peak = np.array([dy[iy], dx[ix]])
    for step in (0.1, 0.01):
        gy, gx = peak[:, None] + step * np.arange(-10, 11)  # [2, G]
        ey = np.exp(2j * np.pi * np.outer(gy, np.fft.fftfreq(h)))  # [G, h]
        ex = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(w), gx))  # [w, G]
        # einsum, not @: BLAS threads cost more than they save on matrices this small.
        corr = np.einsum("gw,wk->gk", np.einsum("gh,hw->gw", ey, spectrum), ex).real  # [G, G] at (gy, gx)
        j = np.clip(np.unravel_index(np.argmax(corr), corr.shape), 1, len(gy) - 2)
        peak = np.array([gy[j[0]], gx[j[1]]])
    lines = (corr[j[0] - 1 : j[0] + 2, j[1]], corr[j[0], j[1] - 1 : j[1] + 2])
    peak += [step * (c[0] - c[2]) / (2 * (c[0] - 2 * c[1] + c[2]) - 1e-12) for c in lines]  # parabola vertices
    return peak[::-1]


def _centred(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x [h, w] minus its weighted mean, times the weight: a windowed image whose correlation ignores brightness."""
    return (x - (x * weight).sum() / weight.sum()) * weight


def region_flow_error(video: np.ndarray, flow: dict, pan: np.ndarray, colors: np.ndarray) -> float:
    """Mean over frame pairs (f-1, f) of |estimated - true| velocity px/frame of the texture in a flow brush's box.

    video uint8 [T, H, W, 3]; flow: the brush ({"mask": {"box": [x0, y0, x1, y1]}, "direction", "speed"}); pan [2]
    px/frame; colors uint8 [S, 3]. The box is fixed in the scene, so at frame f it covers [x0, x1] x [y0, y1] + f·pan
    in frame coordinates, and the texture there moves by v = speed · d/|d| + pan per frame.

    Each pair compares luma (RGB mean) crops of frame f-1 at pixels p and of frame f at p + n, with n the integer
    part of the motion (0 at first): p ranges over the pixels whose centres lie in the box shrunk by 1 px (clear of
    its anti-aliased rim) at f-1, whose p + n do at f, and inside the frame. Both crops are weighted by a Hann window
    times `_sprite_free` of the sprite pixels (chroma above threshold) in either, and registered by
    `correlation_shift`. A window fixed in frame coordinates pulls the estimate towards the window's own (zero)
    shift, so the window of frame f is then moved by the sub-pixel estimate and the registration repeated: at the
    fixed point the two windows differ by exactly the motion and the pull vanishes. NaN if every pair's crop is under
    8 px in either direction.
    """
    box = np.asarray(flow["mask"]["box"], np.float64)
    d = np.asarray(flow["direction"], np.float64)
    truth = flow["speed"] * d / np.linalg.norm(d) + pan
    frames, height, width = video.shape[:3]
    luma = np.asarray(video, np.float64).mean(axis=-1)
    sprite = _sprite_weights(video, colors).max(axis=-1) > 0
    last = np.array([width - 1, height - 1])
    errors = []
    for f in range(1, frames):
        n, r = np.zeros(2, int), np.zeros(2)
        for step in range(REGISTRATIONS):
            lo = np.maximum(np.ceil(box[:2] + 1 + (f - 1) * pan), np.ceil(box[:2] + 1 + f * pan) - n)
            hi = np.minimum(np.floor(box[2:] - 1 + (f - 1) * pan), np.floor(box[2:] - 1 + f * pan) - n)
            lo, hi = np.maximum(lo, np.maximum(-n, 0)).astype(int), np.minimum(hi, last - np.maximum(n, 0)).astype(int)
            if (hi - lo < 7).any():
                break
            pa = (slice(lo[1], hi[1] + 1), slice(lo[0], hi[0] + 1))
            pb = (slice(lo[1] + n[1], hi[1] + 1 + n[1]), slice(lo[0] + n[0], hi[0] + 1 + n[0]))
            free = _sprite_free(sprite[f - 1][pa] | sprite[f][pb])
            wa = np.outer(_hann(free.shape[0]), _hann(free.shape[1])) * free
            wb = np.outer(_hann(free.shape[0], r[1]), _hann(free.shape[1], r[0])) * _moved(free, r)
            estimate = n + correlation_shift(_centred(luma[f - 1][pa], wa), _centred(luma[f][pb], wb))
            if step == 0:
                n = np.rint(estimate).astype(int)
            r = np.clip(estimate - n, -1.0, 1.0)
        else:
            errors.append(np.linalg.norm(estimate - truth))
    return float(np.mean(errors)) if errors else float("nan")


def clip_metrics(video: np.ndarray, clip: dict) -> dict:
    """Brush-following metrics of one video against its BrushSprites clip.

    video uint8 [T, H, W, 3]; clip: `brush_sprites`' dict, or one with its fields brushes, tracks [S, T, 2],
    visible [S, T], kinds, colors [S, 3]. Returns per-sprite float64 [S] arrays epe, max_displacement,
    direction_cosine (NaN for static sprites), static_leakage (NaN unless static), success bool [S], kinds, and
    region_flow_error (float; NaN without a flow brush). Definitions: the module docstring.
    """
    tracks, visible = np.asarray(clip["tracks"], np.float64), np.asarray(clip["visible"], bool)
    kinds = list(clip["kinds"])
    pred, found = sprite_centroids(video, clip["colors"])
    diagonal = float(np.hypot(*video.shape[1:3]))
    error = np.where(found, np.linalg.norm(pred - tracks, axis=-1), diagonal)  # [S, T]
    counted = visible[:, 1:]
    epe = (error[:, 1:] * counted).sum(axis=1) / np.maximum(counted.sum(axis=1), 1)
    epe = np.where(counted.any(axis=1), epe, np.nan)
    motion = tracks - tracks[:, :1]
    moved = np.linalg.norm(motion, axis=-1)  # [S, T]
    max_displacement = moved.max(axis=1)

    shift = pred - pred[:, :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (shift * motion).sum(-1) / (np.linalg.norm(shift, axis=-1) * moved)
    cos = np.where(found & found[:, :1], np.nan_to_num(cos, nan=0.0), 0.0)
    use = moved > 1.0
    mover = np.array([k in ("path", "sway") for k in kinds])
    with np.errstate(invalid="ignore", divide="ignore"):
        direction = np.where(mover, (cos * use).sum(axis=1) / use.sum(axis=1), np.nan)

    residual = pred - tracks
    step = np.where(found[:, 1:] & found[:, :-1], np.linalg.norm(np.diff(residual, axis=1), axis=-1), diagonal)
    pairs = visible[:, 1:] & visible[:, :-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        leakage = (step * pairs).sum(axis=1) / pairs.sum(axis=1)
    leakage = np.where(np.array([k == "static" for k in kinds]), leakage, np.nan)

    extra = clip["brushes"]["brushes"][len(kinds) :]
    pan = next((np.asarray(b["pan"], np.float64) for b in extra if b["mode"] == "camera"), np.zeros(2))
    flow = next((b for b in extra if b["mode"] == "flow"), None)
    region = region_flow_error(video, flow, pan, clip["colors"]) if flow is not None else float("nan")
    return {
        "epe": epe,
        "max_displacement": max_displacement,
        "success": epe <= np.maximum(0.75, 0.15 * max_displacement),
        "direction_cosine": direction,
        "static_leakage": leakage,
        "kinds": kinds,
        "region_flow_error": region,
    }


def copy_first_frame(clips: list) -> list:
    """The reference "model": frame 0 held for the whole clip."""
    return [np.repeat(c["video"][:1], len(c["video"]), axis=0) for c in clips]


def video_psnr(videos: list, clips: list) -> dict:
    """PSNR (dB) of videos uint8 [T, H, W, 3] against their clips' frames 1 … T-1, pooled per group (module doc)."""
    mse = np.array(
        [np.square(v[1:].astype(np.float64) - c["video"][1:]).mean() for v, c in zip(videos, clips, strict=True)]
    )
    modes = [{b["mode"] for b in c["brushes"]["brushes"]} for c in clips]
    groups = {
        "psnr": np.ones(len(clips), bool),
        "psnr_no_flow": np.array(["flow" not in m for m in modes]),
        "psnr_flow": np.array(["flow" in m for m in modes]),
        "psnr_plain": np.array([not m & {"flow", "camera"} for m in modes]),
    }
    return {
        k: float(10 * np.log10(255**2 / max(mse[g].mean(), 1e-10))) if g.any() else float("nan")
        for k, g in groups.items()
    }


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def evaluate(videos: list, clips: list) -> dict:
    """Brush-following metrics over an eval set: videos uint8 [T, H, W, 3] each, clips their BrushSprites dicts.

    Returns floats (NaN where nothing is counted): path_success, sway_success (fractions of those sprites), path_epe,
    sway_epe, epe (all sprites), px; psnr, psnr_no_flow, psnr_flow, psnr_plain dB (`video_psnr`); static_leakage
    px/frame (static sprites); direction_cosine (path and sway sprites); region_flow_error px/frame (clips with a
    flow brush); and the counts n_path, n_sway, n_static, n_flow.
    """
    per = [clip_metrics(v, c) for v, c in zip(videos, clips, strict=True)]
    kinds = np.array([k for m in per for k in m["kinds"]])
    epe, success, direction, leakage = (
        np.concatenate([m[key] for m in per]).astype(np.float64)
        for key in ("epe", "success", "direction_cosine", "static_leakage")
    )
    region = np.array([m["region_flow_error"] for m in per if not np.isnan(m["region_flow_error"])])
    out = {}
    for kind in ("path", "sway"):
        out[f"{kind}_success"] = _mean(success[kinds == kind])
        out[f"{kind}_epe"] = _mean(epe[kinds == kind])
    out |= {
        "epe": _mean(epe),
        "static_leakage": _mean(leakage),
        "direction_cosine": _mean(direction),
        "region_flow_error": _mean(region),
        "n_path": int((kinds == "path").sum()),
        "n_sway": int((kinds == "sway").sum()),
        "n_static": int((kinds == "static").sum()),
        "n_flow": len(region),
    }
    return out | video_psnr(videos, clips)
