"""Per-frame sigma matrices for the one sampler loop, and the attention each schedule needs.

    sigmas = synchronous(steps=30, shift=5.0, frames=241)                         # [31, 241], equal columns
    sigmas = pyramid(steps=30, shift=5.0, frames=241, segment_frames=8, lag=2)    # [31 + 30 * 2, 241]
    windows = chained_windows(frames=241, window=21, overlap=5)                  # [(0, 21), (16, 37), ...]

Row i of a matrix holds each latent frame's sigma before step i (`samplers.sample`).
* synchronous: every frame at the same sigma, full attention over the whole clip.
* pyramid (diffusion forcing): segment j runs the same schedule j·lag steps after segment j − 1; a causal
  segment mask lets each segment see only itself and earlier ones, which are less noisy or already clean.
* chained (the baseline): independent windows of `window` latent frames, each started from the last `overlap`
  latent frames of the previous one, kept clean as its conditioning.
"""

from __future__ import annotations

import numpy as np

from wanjax.diffusion.flow import sampling_sigmas
from wanjax.errors import WanjaxError

SCHEDULES = ("synchronous", "pyramid", "chained")


def synchronous(steps: int, shift: float, frames: int, timesteps: str = "continuous") -> np.ndarray:
    """[steps + 1, frames]: Wan's shifted sigmas (`sampling_sigmas`), the same for every frame."""
    return np.repeat(sampling_sigmas(steps, shift, timesteps)[:, None], frames, axis=1)


def pyramid(
    steps: int, shift: float, frames: int, segment_frames: int, lag: int, timesteps: str = "continuous"
) -> np.ndarray:
    """[steps + (segments - 1)·lag + 1, frames]: segment j (frames j·segment_frames …) starts j·lag steps late and
    waits at sigma 1 until then; a finished segment stays at 0. lag = 0 is synchronous."""
    if segment_frames < 1 or lag < 0:
        raise WanjaxError(f"pyramid schedule: segment_frames={segment_frames} must be >= 1 and lag={lag} >= 0")
    base = sampling_sigmas(steps, shift, timesteps)
    segment = np.arange(frames) // segment_frames  # [F]
    rows = steps + int(segment[-1]) * lag + 1
    index = np.clip(np.arange(rows)[:, None] - segment[None, :] * lag, 0, steps)  # [rows, F]
    return base[index]


def pyramid_windows(sigmas: np.ndarray, segment_frames: int) -> tuple[np.ndarray, int]:
    """Where a K/V-cached pyramid step computes: (start frame of each step [steps], window length A).

    Step i's window of A frames holds every frame that moves in it, and the segment before the first of them
    (finished: computing it at its final state is what puts its exact K/V in the cache before it falls behind the
    window). Frames before the window are read from the cache; frames after it wait at sigma 1 and, under the
    causal mask, change nothing before them."""
    frames = sigmas.shape[1]
    segment = np.arange(frames) // segment_frames
    bounds = []
    for moving in sigmas[1:] != sigmas[:-1]:
        idx = np.flatnonzero(moving)
        lo = max(0, (int(segment[idx[0]]) - 1) * segment_frames) if len(idx) else 0
        hi = min(frames, (int(segment[idx[-1]]) + 1) * segment_frames) if len(idx) else frames
        bounds.append((lo, hi))
    length = max(hi - lo for lo, hi in bounds)
    return np.array([min(lo, frames - length) for lo, _ in bounds], np.int32), length


def chained_windows(frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Latent frame ranges [start, stop) of the chained baseline's windows: each starts `overlap` frames before the
    previous one ended; the last one ends at `frames` (it may be shorter)."""
    if not 0 <= overlap < window:
        raise WanjaxError(
            f"chained schedule: sample.overlap={overlap} must be >= 0 and smaller than sample.window={window}"
        )
    out, start = [], 0
    while True:
        stop = min(start + window, frames)
        out.append((start, stop))
        if stop == frames:
            return out
        start = stop - overlap


def attention_mask(schedule: str) -> str:
    """The self-attention mask a schedule samples with (the one the model was trained with for that mode)."""
    if schedule not in SCHEDULES:
        raise WanjaxError(f"sample.schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
    return "causal" if schedule == "pyramid" else "full"
