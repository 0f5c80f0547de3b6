"""The command line end to end on tiny settings: files written, errors as one line, conversions."""

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from wanjax.cli import main
from wanjax.data.sprites import sprites60
from wanjax.data.tfds.procedural import clip_seed
from wanjax.eval.longvideo import colour_drift, seams_and_flashes, sprite_identity

REPO = Path(__file__).parents[1]
TINY = str(REPO / "configs" / "tiny.yaml")
FAST = ["sample.frames=5", "sample.height=32", "sample.width=48", "sample.steps=2"]


def test_sample_writes_playable_video_and_metadata(tmp_path):
    assert main(["sample", TINY, "--out", str(tmp_path), "--seed", "3", *FAST]) == 0
    mp4 = iio.imread(tmp_path / "sample.mp4")
    gif = iio.imread(tmp_path / "sample.gif")
    assert mp4.shape == (5, 32, 48, 3) and gif.shape == (5, 32, 48, 3)
    npz = np.load(tmp_path / "sample.npz")
    assert npz["frames"].shape == (5, 32, 48, 3) and npz["frames"].dtype == np.uint8
    assert npz["latents"].shape == (2, 8, 12, 192)  # no --ckpt: the bundled model (pixel codec, stride 4)
    meta = json.loads((tmp_path / "sample.json").read_text())
    assert meta["seed"] == 3 and meta["config"]["sample"]["steps"] == 2
    assert meta["checkpoint"].endswith("assets/demo")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_same_seed_same_video(tmp_path):
    for d in ("a", "b"):
        assert main(["sample", TINY, "--out", str(tmp_path / d), *FAST]) == 0
    a, b = (np.load(tmp_path / d / "sample.npz")["latents"] for d in ("a", "b"))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("schedule", ["synchronous", "pyramid"])
def test_sample_on_a_ring_equals_one_device(tmp_path, schedule):
    """mesh.ring=8: the clip's 9 latent frames sharded over 8 fake devices (ring attention, padded to 16) give the
    latents of the one-device run (fp32, ≤ 1e-4 relative)."""
    long = [*FAST, "sample.frames=33", f"sample.schedule={schedule}", "mesh.segment_frames=2"]
    for d, ring in (("one", "1"), ("ring", "8")):
        assert main(["sample", TINY, "--out", str(tmp_path / d), *long, f"mesh.ring={ring}"]) == 0
    one, ring = (np.load(tmp_path / d / "sample.npz")["latents"] for d in ("one", "ring"))
    assert one.shape == (9, 8, 12, 192)
    assert np.abs(ring - one).max() / np.abs(one).max() <= 1e-4
    assert json.loads((tmp_path / "ring" / "sample.json").read_text())["mesh"]["ring"] == 8


@pytest.mark.parametrize(
    "args, message",
    [(["sample.frames=16"], "sample.frames=16 is not 4k+1; use 13 or 17"),
     (["sample.height=36"], "sample.height=36 is not a multiple of 8 (VAE stride 4 x patch); use 32 or 40"),
     (["model.num_layerz=1"], "unknown config key model.num_layerz")],
)  # fmt: skip
def test_bad_input_is_one_line_with_the_fix(tmp_path, capsys, args, message):
    assert main(["sample", TINY, "--out", str(tmp_path), *FAST, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_missing_checkpoint_folder(tmp_path, capsys):
    assert main(["sample", TINY, "--out", str(tmp_path), "--ckpt", str(tmp_path / "nope"), *FAST]) == 2
    assert "is not a checkpoint" in capsys.readouterr().err


def test_config_names_its_checkpoint(tmp_path, capsys):
    """sample.checkpoint: a bundled name or a folder; --ckpt wins over it; an unknown name is a one-line error."""
    copy = tmp_path / "my-ckpt"  # a folder other than the bundled default, so that using it is seen
    shutil.copytree(REPO / "wanjax" / "assets" / "demo", copy)
    used = lambda d: json.loads((tmp_path / d / "sample.json").read_text())["checkpoint"]  # noqa: E731
    assert main(["sample", TINY, "--out", str(tmp_path / "a"), *FAST, f"sample.checkpoint={copy}"]) == 0
    assert used("a") == str(copy)
    assert main(["sample", TINY, "--out", str(tmp_path / "b"), *FAST, "sample.checkpoint=demo"]) == 0
    assert used("b").endswith("wanjax/assets/demo")
    args = ["sample", TINY, "--out", str(tmp_path / "c"), "--ckpt", str(copy), *FAST, "sample.checkpoint=nope"]
    assert main(args) == 0 and used("c") == str(copy)
    assert main(["sample", TINY, "--out", str(tmp_path / "d"), *FAST, "sample.checkpoint=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "sample.checkpoint=nope is neither a bundled checkpoint (demo, sprites60)" in err and "\n" not in err


def test_sprites60_config_samples_its_bundled_model(tmp_path):
    """`wanjax sample configs/sprites60.yaml --image F.png`: the long-video model the config names, 60 s at the
    image's size, sampled the config's way (pyramid, segments of 2 latent frames). From the first frame of Sprites60
    eval clip 0 (never trained on), frame 0 is the image, the sprites keep their colours and shapes (identity 1.0
    measured at 4 steps; a sampler that loses them, as synchronous sampling of this model does, scores ~0.01), the
    last second stays within the drift bar (0.67 ΔE measured) and the video does not flash (0 measured; 4 at one
    latent frame in the trained segments of 8, 240 at every latent frame before model.subframe_ramp)."""
    clip = sprites60(clip_seed(0, "eval", 0), 961, 32, 32)
    image = tmp_path / "first.png"
    iio.imwrite(image, clip["video"][0])
    args = ["sample", str(REPO / "configs" / "sprites60.yaml"), "--image", str(image), "--out", str(tmp_path)]
    assert main([*args, "sample.steps=4"]) == 0
    assert json.loads((tmp_path / "sample.json").read_text())["checkpoint"].endswith("assets/sprites60")
    frames = np.load(tmp_path / "sample.npz")["frames"]
    assert frames.shape == (961, 32, 32, 3)
    np.testing.assert_array_equal(frames[0], clip["video"][0])
    assert sprite_identity(frames, clip)["identity"] >= 0.9
    assert colour_drift(frames)["drift_last"] <= 2.0
    assert seams_and_flashes(frames)["flashes"] <= 1


def test_export_copies_a_sample_folder(tmp_path):
    assert main(["sample", TINY, "--out", str(tmp_path / "s"), *FAST]) == 0
    assert main(["export", str(tmp_path / "s"), str(tmp_path / "copy")]) == 0
    names = sorted(p.name for p in (tmp_path / "copy").iterdir())
    assert names == ["sample.gif", "sample.json", "sample.mp4", "sample.npz", "sample.png"]
    assert (tmp_path / "copy" / "sample.mp4").read_bytes() == (tmp_path / "s" / "sample.mp4").read_bytes()


@pytest.mark.parametrize("command", ["demo", "sample", "train", "convert", "export", "bench", "launch"])
def test_help_lists_every_option_with_its_default(capsys, command):
    from wanjax.cli import _parser
    from wanjax.config import Config, config_to_dict

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    actions = _parser()._subparsers._group_actions[0].choices[command]._actions
    assert len(actions) >= 2
    for action in actions:
        assert (action.option_strings[-1] if action.option_strings else action.metavar or action.dest) in text
        if action.default not in (None, False, "==SUPPRESS==") and not action.required:
            assert f"(default: {action.default})" in text
    sections = {"sample": ("sample", "mesh"), "train": ("train", "data", "mesh", "model", "vae")}.get(command, ())
    for section in sections:
        for key, value in config_to_dict(getattr(Config(), section)).items():
            assert f"{section}.{key}={value}" in text


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import wanjax.sample

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(wanjax.sample, "run_sample", broken)
    assert main(["sample", TINY, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("wanjax sample: internal error: ZeroDivisionError: division by zero") and "\n" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "sample", TINY, "--out", str(tmp_path)])


def test_prompt_without_a_text_encoder_is_one_line_with_the_fix(tmp_path, capsys):
    assert main(["sample", TINY, "--out", str(tmp_path), "--prompt", "a cat", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no text encoder; use a checkpoint with text_encoder/ + tokenizer/" in err and "\n" not in err
