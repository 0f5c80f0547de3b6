"""Point tracking (wanjax.motion.tracking) on clips with known motion, through H.264 mp4 as users' files are."""

import json
from pathlib import Path

import numpy as np
import pytest

from wanjax.cli import main
from wanjax.data.known_motion import affine_clip, brush_sprites_truth, layered_clip, score, textured
from wanjax.data.sprites import brush_sprites
from wanjax.errors import WanjaxError
from wanjax.io.export import write_video
from wanjax.motion import KINDS, compile_brushes, load_brushes
from wanjax.motion.tracking import background, grid, read_video, track_points, track_video

pytestmark = pytest.mark.filterwarnings("ignore:os.fork")  # imageio's ffmpeg subprocess under JAX's fork hook


def _through_mp4(video, tmp_path, name):
    return read_video(write_video(tmp_path / f"{name}.mp4", video, 16))


def _pooled(runs):
    return score(*(np.concatenate(a) for a in zip(*runs, strict=True)))


def _textured(video, queries, answer, truth):
    keep = textured(video[0], queries)
    return [a[keep] for a in (*answer, *truth)]


def test_accuracy_on_known_motion(tmp_path):
    """Median end-point error of visible textured points over 17 frames: ≤ 0.5 px at 64x64 (affine motion and
    BrushSprites), ≤ 1 px for BrushSprites upscaled to 256x256."""
    import cv2

    sets = {"affine": [], "sprites": [], "sprites256": []}
    for seed in range(2):
        clip = affine_clip(seed)
        video = _through_mp4(clip["video"], tmp_path, f"a{seed}")
        q = grid((64, 64), 256)
        sets["affine"].append(_textured(video, q, track_points(video, q), clip["truth"](q)))
        clip = brush_sprites(10_000 + seed, 17, 64, 64)
        video = _through_mp4(clip["video"], tmp_path, f"s{seed}")
        sets["sprites"].append(_textured(video, q, track_points(video, q), brush_sprites_truth(clip, q)))
    big = np.stack([cv2.resize(f, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) for f in clip["video"]])
    video, q = _through_mp4(big, tmp_path, "s256"), grid((256, 256), 256)
    xy, visible, scored = brush_sprites_truth(clip, (q + 0.5) / 4 - 0.5)
    truth = ((xy + 0.5) * 4 - 0.5, visible, scored)
    sets["sprites256"].append(_textured(video, q, track_points(video, q), truth))
    scores = {k: _pooled(v) for k, v in sets.items()}
    assert scores["affine"]["epe_median"] <= 0.5 and scores["sprites"]["epe_median"] <= 0.5, scores
    assert scores["sprites256"]["epe_median"] <= 1.0, scores
    assert min(scores[k]["pairs"] for k in scores) > 500, scores


def test_visibility_of_discs_that_leave_or_are_covered(tmp_path):
    """Points on textured discs that leave the frame or pass under another: visibility precision and recall ≥ 0.9
    over (point, frame) pairs, against a truth where a tenth or more of the pairs are hidden."""
    runs = []
    for seed in range(4):
        clip = layered_clip(seed)
        video = _through_mp4(clip["video"], tmp_path, f"l{seed}")
        q = grid((64, 64), 400)
        on = np.linalg.norm(q[:, None] - clip["centres"][None, :, 0], axis=-1).min(axis=1) < clip["radius"]
        runs.append([*track_points(video, q[on]), *clip["truth"](q[on])])
    s = _pooled(runs)
    assert s["precision"] >= 0.9 and s["recall"] >= 0.9 and s["hidden"] >= 0.1 * s["pairs"], s
    assert s["epe_median"] <= 0.5, s


def test_track_video_reseeds_and_pads():
    """A grid of frame-0 tracks plus re-seeded ones (started later where tracks are missing, chained back to frame 0
    as far as they hold), padded to points + reseed rows; the re-seeded ones on the ground follow its pan."""
    clip = layered_clip(1)
    tracks = track_video(clip["video"], points=100, reseed=60)
    assert tracks.xy.shape == (160, 17, 2) and tracks.visible.shape == (160, 17) and tracks.frames == 17
    assert (tracks.kind[tracks.valid] == KINDS.index("path")).all() and (tracks.brush_id[tracks.valid] == 0).all()
    assert (tracks.kind[~tracks.valid] == -1).all() and not tracks.visible[~tracks.valid].any()
    rows = len(grid((64, 64), 100))
    assert tracks.visible[:rows, 0].all()
    new = np.flatnonzero(tracks.valid)[rows:]
    start = tracks.visible[new].argmax(axis=1)
    assert len(new) > 0 and (start > 0).any()  # some start after frame 0: what the leaving disc uncovers
    t = np.arange(17)
    at = tracks.xy[new, start].astype(np.float64)  # position where each started
    on_disc = (
        np.linalg.norm(at[:, None] - clip["centres"][:, start].transpose(1, 0, 2), axis=-1) < clip["radius"] + 2
    ).any(1)
    ground = ~on_disc
    expected = at[:, None] + clip["pan"] * (t[None, :, None] - start[:, None, None])
    err = np.linalg.norm(tracks.xy[new] - expected, axis=-1)[ground][tracks.visible[new][ground]]
    assert ground.sum() >= 5 and np.median(err) <= 0.5, (ground.sum(), np.median(err))


def test_background_separates_what_moves_on_its_own():
    """Under a camera pan (BrushSprites with one), the tracks of the ground are background, those of a moving
    sprite are not."""
    clip = next(c for c in (brush_sprites(s, 17, 64, 64, flow_prob=0.0, camera_prob=1.0) for s in range(50))
                if "path" in c["kinds"])  # fmt: skip
    q = grid((64, 64), 400)
    xy, visible, _ = brush_sprites_truth(clip, q)
    still = background(xy, visible)
    mover = clip["kinds"].index("path")
    on = np.linalg.norm(q - clip["tracks"][mover, 0], axis=-1) < 2
    assert on.any() and not still[on].any()
    assert still.mean() > 0.7


def test_cli_tracks_writes_a_brush_that_replays_the_motion(tmp_path, capsys):
    """`wanjax tracks clip.mp4 --out B.json`: a valid brush file (background and moving tracks brushes) whose
    trajectories follow the clip; --mask keeps only points inside; bad input names the problem."""
    clip = brush_sprites(3, 17, 64, 64)
    path = write_video(tmp_path / "clip.mp4", clip["video"], 16)
    assert main(["tracks", str(path), "--out", str(tmp_path / "b.json"), "--points", "200"]) == 0
    spec = load_brushes(tmp_path / "b.json", size=(64, 64), frames=17)
    assert [b["name"] for b in spec["brushes"]] == ["background", "moving"]
    assert [b["kind"] for b in spec["brushes"]] == ["camera", "path"]
    points = np.concatenate([np.asarray(b["points"]) for b in spec["brushes"]])
    seen = np.concatenate([np.asarray(b["visible"]) for b in spec["brushes"]])
    assert 150 <= len(points) <= 200
    xy, visible, scored = brush_sprites_truth(clip, points[:, 0])
    s = score(points, seen, xy, visible, scored)
    assert s["epe_median"] <= 0.5 and s["precision"] >= 0.9, s
    tracks = compile_brushes(tmp_path / "b.json", max_tracks=64)
    assert tracks.valid.sum() == 64 and set(tracks.kind[tracks.valid]) <= {KINDS.index("camera"), KINDS.index("path")}

    box = '{"box": [10, 10, 30, 40]}'
    assert main(["tracks", str(path), "--out", str(tmp_path / "m.json"), "--points", "50", "--mask", box]) == 0
    starts = np.concatenate(
        [np.asarray(b["points"])[:, 0] for b in json.loads((tmp_path / "m.json").read_text())["brushes"]]
    )
    assert (
        40 <= len(starts) <= 50 and (starts >= 10).all() and (starts[:, 0] <= 30).all() and (starts[:, 1] <= 40).all()
    )
    capsys.readouterr()
    assert main(["tracks", str(path), "--out", str(tmp_path / "x.json"), "--mask", "{box"]) == 2
    assert "--mask '{box' is not JSON" in capsys.readouterr().err
    (tmp_path / "broken.mp4").write_bytes(path.read_bytes()[:200])
    assert main(["tracks", str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "y.json")]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4: cannot decode it (OSError); is it a complete video file?" in err and err.count("\n") == 1


def test_bad_video_is_refused():
    with pytest.raises(WanjaxError, match=r"video must be uint8 \[T ≥ 2, H, W, 3\]"):
        track_points(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 2)))


def test_copied_motion_replays_with_the_bundled_model(tmp_path):
    """`wanjax tracks` of BrushSprites eval clips, replayed on their own first frames by the bundled brush model:
    the sprites move the clips' way (bench/tracking.json has 40 clips: EPE 2.4 px vs 6.4 with no motion)."""
    import jax.numpy as jnp

    from wanjax.eval.brushsprites import eval_clips
    from wanjax.eval.motion import evaluate
    from wanjax.io.weights import load_checkpoint
    from wanjax.motion.embed import motion_input
    from wanjax.motion.tracking import video_brush
    from wanjax.sample import generate

    cfg, dit, vae = load_checkpoint(Path(__file__).parents[2] / "wanjax" / "assets" / "demo")
    clips = eval_clips(6)
    files = [video_brush(write_video(tmp_path / f"{i}.mp4", c["video"], 16)) for i, c in enumerate(clips)]
    motion = motion_input([compile_brushes(f, max_tracks=cfg.sample.max_tracks) for f in files], cfg.vae)
    image = np.stack([c["video"][0] for c in clips])
    context = jnp.zeros((len(clips), 1, cfg.model.text_dim), jnp.float32)
    scores = {}
    for name, m in (("tracks", motion), ("none", motion.dropped())):
        videos = generate(dit, vae, cfg, 0, context, image=image, motion=m, progress=False)[0]
        scores[name] = evaluate(list(videos), clips)
    assert scores["tracks"]["epe"] < 0.5 * scores["none"]["epe"], scores
    assert scores["tracks"]["direction_cosine"] > 0.85, scores
