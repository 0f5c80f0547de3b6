"""Training tracks from a real clip's stored point tracks: a random subset, spread out, with dropout.

    tracks = sample_tracks(xy, visible, valid, rng, rows=256, count=(1, 200), spread=4.0, dropout=0.1)

Wan-Move (Chu et al. 2025, §3.3) and ATI train on a random number of a clip's tracks so that the model follows one
drag as well as many; this is that sampler. Only tracks visible in frame 0 are candidates: the motion branch embeds
each track by the first frame's latent at its start (`wanjax.model.motion`). Shapes: P stored tracks, T frames.
"""

import numpy as np

from wanjax.motion.tracks import KINDS, Tracks


def spaced(points: np.ndarray, order: np.ndarray, count: int, spread: float) -> np.ndarray:
    """The first `count` indices of `order` (into points [P, 2]) whose points lie ≥ spread px from every point kept
    before them (greedy, like Poisson-disk sampling); spread 0 keeps the first `count`."""
    if spread <= 0:
        return order[:count]
    kept: list[int] = []
    for i in order:
        if len(kept) == count:
            break
        if not kept or np.square(points[kept] - points[i]).sum(-1).min() >= spread * spread:
            kept.append(int(i))
    return np.array(kept, np.int64)


def sample_tracks(
    xy: np.ndarray, visible: np.ndarray, valid: np.ndarray, rng: np.random.Generator, *, rows: int,
    size: tuple[int, int], count: tuple[int, int] | None = None, spread: float = 0.0, dropout: float = 0.0,
) -> Tracks:  # fmt: skip
    """A random subset of one clip's stored tracks (xy [P, T, 2], visible [P, T], valid [P]) as Tracks of `rows`
    rows (one brush of kind "path", like a `tracks` brush file).

    count: (a, b) = draw the number of tracks uniformly in [a, b] (None: as many as fit in rows); spread: picked
    tracks start at least this many px apart in frame 0; dropout: each picked track is hidden at each frame after
    frame 0 with this probability (the model learns to follow tracks with gaps). The defaults keep a random
    `rows` of the candidates, whole."""
    candidates = np.flatnonzero(np.asarray(valid, bool) & np.asarray(visible, bool)[:, 0])
    n = rows if count is None else int(rng.integers(count[0], count[1] + 1))
    picked = spaced(np.asarray(xy)[:, 0], rng.permutation(candidates), min(n, rows, len(candidates)), spread)
    seen = np.asarray(visible, bool)[picked]
    if dropout > 0:
        seen[:, 1:] &= rng.random((len(picked), seen.shape[1] - 1)) >= dropout
    pad, used = rows - len(picked), np.arange(rows) < len(picked)
    return Tracks(
        xy=np.pad(np.asarray(xy, np.float32)[picked], ((0, pad), (0, 0), (0, 0))),
        visible=np.pad(seen, ((0, pad), (0, 0))),
        valid=used,
        brush_id=np.where(used, 0, -1).astype(np.int32),
        kind=np.where(used, KINDS.index("path"), -1).astype(np.int32),
        size=size,
        frames=np.asarray(xy).shape[1],
    )
