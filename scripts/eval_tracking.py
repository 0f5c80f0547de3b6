"""Point tracking measured (README "Motion from real video") -> JSON: accuracy of each method on clips with known
motion, the 480p speed, and the motion of BrushSprites clips copied by `wanjax tracks` and replayed by a brush model.

    python scripts/eval_tracking.py --json bench/tracking.json                 # everything (~15 min on 2 cores)
    python scripts/eval_tracking.py --parts accuracy --clips 4                 # one part, fewer clips

accuracy: every clip goes through an H.264 mp4 (as users' files do); query points on a grid in frame 0, scored over
frames 1-16 (`wanjax.data.known_motion`): median end-point error of visible points on textured regions (`textured`:
Shi-Tomasi cornerness at 64 px ≥ TEXTURED; also those of them that move by 1 px or more), and visibility
precision / recall, on all points and on the discs of `layered_clip` that leave the frame or are covered.
replay: each eval clip's mp4 -> a tracks brush -> the checkpoint samples its own first frame with it; the
BrushSprites motion metrics (wanjax.eval.motion) beside those of the clip's own brushes.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wanjax.data.known_motion import affine_clip, brush_sprites_truth, layered_clip, score, textured
from wanjax.data.sprites import brush_sprites
from wanjax.io.export import write_json, write_video
from wanjax.motion.tracking import METHODS, background, grid, read_video, track_points, track_video, video_brush

UP = 4  # BrushSprites 64 px upscaled to 256 px


def _mp4(video: np.ndarray, folder: Path, name: str) -> Path:
    return write_video(folder / f"{name}.mp4", video, 16)


def _upscaled(clip: dict) -> tuple[np.ndarray, callable]:
    """A BrushSprites clip upscaled UP x (bicubic) and its truth in the upscaled pixels."""
    import cv2

    video = np.stack([cv2.resize(f, None, fx=UP, fy=UP, interpolation=cv2.INTER_CUBIC) for f in clip["video"]])

    def truth(points):
        xy, visible, scored = brush_sprites_truth(clip, (points + 0.5) / UP - 0.5)
        return (xy + 0.5) * UP - 0.5, visible, scored

    return video, truth


def _sets(clips: int) -> dict:
    """Name -> [(video, truth, disc mask or None)] of the accuracy sets."""
    sprites = [brush_sprites(10_000 + i, 17, 64, 64) for i in range(clips)]
    layered = [layered_clip(i) for i in range(clips)]
    return {
        "affine64": [(c["video"], c["truth"], None) for c in (affine_clip(i) for i in range(clips))],
        "affine256": [(c["video"], c["truth"], None) for c in (affine_clip(i, 17, 256, 256) for i in range(clips))],
        "brushsprites64": [(c["video"], lambda q, c=c: brush_sprites_truth(c, q), None) for c in sprites],
        "brushsprites256": [(*_upscaled(c), None) for c in sprites],
        "layered64": [(c["video"], c["truth"], c) for c in layered],
    }


def accuracy(clips: int, folder: Path) -> dict:
    out = {}
    sets = _sets(clips)
    for method in METHODS:
        for name, items in sets.items():
            rows, seconds = {"textured": [], "textured_moving": [], "all": [], "discs": []}, 0.0
            for k, (video, truth, layered) in enumerate(items):
                video = read_video(_mp4(video, folder, f"{name}_{k}"))
                queries = grid(video.shape[2:0:-1], 400)
                t0 = time.perf_counter()
                answer = track_points(video, queries, method)
                seconds += time.perf_counter() - t0
                known = truth(queries)
                on = textured(video[0], queries)
                rows["textured"].append([a[on] for a in (*answer, *known)])
                moves = on & (np.linalg.norm(known[0] - known[0][:, :1], axis=-1).max(axis=1) >= 1.0)
                rows["textured_moving"].append([a[moves] for a in (*answer, *known)])
                rows["all"].append([*answer, *known])
                if layered is not None:
                    d = np.linalg.norm(queries[:, None] - layered["centres"][None, :, 0], axis=-1)
                    on = d.min(axis=1) < layered["radius"]
                    rows["discs"].append([a[on] for a in (*answer, *known)])
            pooled = {k: score(*(np.concatenate(a) for a in zip(*v, strict=True))) for k, v in rows.items() if v}
            out[f"{method}/{name}"] = pooled | {"seconds_per_clip": round(seconds / len(items), 3)}
            print(json.dumps({f"{method}/{name}": out[f"{method}/{name}"]}), flush=True)
    return out


def speed() -> dict:
    """track_video of an 81-frame 832x480 clip (1,024 tracks: 768 grid + 256 re-seeded), each method."""
    clip = affine_clip(0, 81, 480, 832)
    out = {}
    for method in METHODS:
        t0 = time.perf_counter()
        tracks = track_video(clip["video"], points=768, reseed=256, method=method)
        seconds = time.perf_counter() - t0
        xy, visible, scored = clip["truth"](tracks.xy[:768, 0])
        out[method] = {"seconds": round(seconds, 1)} | score(tracks.xy[:768], tracks.visible[:768], xy, visible, scored)
        print(json.dumps({f"speed/{method}": out[method]}), flush=True)
    return out


def _truth_brush(clip: dict, points: int) -> dict:
    """What `video_brush` would write for a BrushSprites clip with a perfect tracker: the true trajectories of the
    same grid, split the same way into background and moving tracks brushes."""
    (width, height), frames = clip["brushes"]["size"], clip["brushes"]["frames"]
    xy, visible, _ = brush_sprites_truth(clip, grid((width, height), points))
    visible[:, 0] = True
    still = background(xy, visible)
    brushes = [
        {"mode": "tracks", "name": name, "kind": kind, "points": xy[rows].tolist(), "visible": visible[rows].tolist()}
        for name, kind, rows in (("background", "camera", still), ("moving", "path", ~still))
        if rows.any()
    ]
    return {"version": 1, "size": [width, height], "frames": frames, "brushes": brushes}


def replay(clips: int, ckpt: str, folder: Path, points: int, methods: tuple[str, ...] = tuple(METHODS)) -> dict:
    """Brush-following metrics of ckpt's samples with each clip's own brushes, with the tracks brush `wanjax
    tracks --method M` makes of its mp4 (each method), with the true trajectories in its place (`_truth_brush`), and
    with the brushes dropped."""
    import jax.numpy as jnp

    from wanjax.eval.brushsprites import eval_clips
    from wanjax.eval.motion import evaluate
    from wanjax.io.weights import load_checkpoint
    from wanjax.motion import compile_brushes
    from wanjax.motion.embed import motion_input
    from wanjax.sample import generate

    cfg, dit, vae = load_checkpoint(ckpt)
    data = eval_clips(clips, cfg.sample.frames, cfg.sample.height)
    paths = [_mp4(c["video"], folder, f"replay_{i}") for i, c in enumerate(data)]
    runs = [("brushes", [c["brushes"] for c in data], False)]
    runs += [(f"tracks/{m}", [video_brush(p, points, method=m) for p in paths], False) for m in methods]
    runs += [("tracks/truth", [_truth_brush(c, points) for c in data], False)]
    runs += [("dropped", [c["brushes"] for c in data], True)]
    out = {}
    for name, files, drop in runs:
        videos = []
        for i in range(0, clips, 20):
            motion = motion_input(
                [compile_brushes(b, max_tracks=cfg.sample.max_tracks) for b in files[i : i + 20]], cfg.vae
            )
            motion = motion.dropped() if drop else motion
            part = data[i : i + 20]
            context = jnp.zeros((len(part), 1, cfg.model.text_dim), jnp.float32)
            image = np.stack([c["video"][0] for c in part])
            videos += list(generate(dit, vae, cfg, i, context, image=image, motion=motion, progress=False)[0])
        out[name] = evaluate(videos, data)
        print(json.dumps({f"replay/{name}": out[name]}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--parts", nargs="+", default=["accuracy", "speed", "replay"], choices=["accuracy", "speed", "replay"]
    )
    p.add_argument("--clips", type=int, default=8, help="clips per accuracy set")
    p.add_argument("--replay-clips", type=int, default=40)
    p.add_argument("--points", type=int, default=256, help="wanjax tracks --points for the replay")
    p.add_argument("--ckpt", default="wanjax/assets/demo")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "accuracy" in args.parts:
            results["accuracy"] = accuracy(args.clips, Path(tmp))
        if "speed" in args.parts:
            results["speed"] = speed()
        if "replay" in args.parts:
            results["replay"] = replay(args.replay_clips, args.ckpt, Path(tmp), args.points)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
