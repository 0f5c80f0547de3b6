"""`wanjax sample CONFIG --image FIRST.png --brush BRUSH.json --out DIR`, the brush CLI of DESIGN.md, end to end with
the bundled checkpoint: files, frame 0 kept, brushes recorded, overlays, any image size, and clear errors."""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from wanjax.cli import main
from wanjax.motion import load_brushes

REPO = Path(__file__).parents[1]
CONFIG = str(REPO / "configs" / "brushsprites.yaml")
IMAGE, BRUSH = str(REPO / "examples" / "sprites.png"), str(REPO / "examples" / "sprites.json")
FAST = ["sample.steps=2"]


def test_sample_from_image_and_brush_file(tmp_path):
    assert main(["sample", CONFIG, "--image", IMAGE, "--brush", BRUSH, "--out", str(tmp_path), *FAST]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"sample{s}" for s in (".mp4", ".gif", ".png", ".npz", ".json", "_overlay.png",
                                             "_overlay.gif", "_overlay.mp4")}  # fmt: skip
    frames = np.load(tmp_path / "sample.npz")["frames"]
    assert frames.shape == (17, 64, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames[0].astype(int) - iio.imread(IMAGE)).max() <= 1  # the video starts from the image
    assert iio.imread(tmp_path / "sample.mp4").shape == (17, 64, 64, 3)
    assert iio.imread(tmp_path / "sample_overlay.png").shape == (256, 256, 3)
    assert iio.imread(tmp_path / "sample_overlay.mp4").shape == (17, 256, 256, 3)
    meta = json.loads((tmp_path / "sample.json").read_text())
    assert meta["brushes"] == load_brushes(BRUSH) and meta["image"] == IMAGE


def test_any_image_size_and_brush_file_of_that_size(tmp_path):
    image = np.full((32, 48, 3), 128, np.uint8)
    image[8:16, 8:16] = (230, 40, 40)
    iio.imwrite(tmp_path / "first.png", image)
    brush = {"version": 1, "size": [48, 32], "frames": 9,
             "brushes": [{"mode": "path", "mask": {"box": [8, 8, 15, 15]}, "path": [[11.5, 11.5], [30, 20]]},
                         {"mode": "camera", "pan": [0.25, 0.0]}]}  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps(brush))
    args = ["--image", str(tmp_path / "first.png"), "--brush", str(tmp_path / "b.json")]
    assert main(["sample", CONFIG, *args, "--out", str(tmp_path / "out"), *FAST]) == 0
    assert np.load(tmp_path / "out" / "sample.npz")["frames"].shape == (9, 32, 48, 3)


@pytest.mark.parametrize(
    "args, message",
    [(["--brush", BRUSH], "--brush needs --image"),
     (["--image", IMAGE, "--brush", BRUSH, "sample.frames=21"], "sample.frames=21 contradicts --brush"),
     (["--image", IMAGE, "--brush", "nope.json"], "nope.json"),
     (["--image", "nope.png"], "--image nope.png not found")],
)  # fmt: skip
def test_bad_brush_input_is_one_line_with_the_fix(tmp_path, capsys, args, message):
    assert main(["sample", CONFIG, *args, "--out", str(tmp_path), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_brush_file_for_another_image_size(tmp_path, capsys):
    iio.imwrite(tmp_path / "small.png", np.zeros((32, 32, 3), np.uint8))
    assert (
        main(["sample", CONFIG, "--image", str(tmp_path / "small.png"), "--brush", BRUSH, "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert "64" in err and "32" in err and "size" in err


def test_malformed_brush_json(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"version": 1, "size": [64, 64], "frames": 17, "brushes": [{"mode": "fly"')
    args = ["--image", IMAGE, "--brush", str(tmp_path / "bad.json"), "--out", str(tmp_path)]
    assert main(["sample", CONFIG, *args]) == 2
    assert "line 1" in capsys.readouterr().err


def test_demo_samples_the_bundled_example_with_overlays(tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert iio.imread(tmp_path / "demo.mp4").shape == (17, 64, 64, 3)
    assert iio.imread(tmp_path / "demo.gif").shape == (17, 64, 64, 3)
    assert iio.imread(tmp_path / "demo_overlay.png").shape == (256, 256, 3)
    meta = json.loads((tmp_path / "demo.json").read_text())
    assert meta["checkpoint"].endswith("assets/demo") and meta["brushes"] == load_brushes(BRUSH)


def test_willow_example_overlay_and_video(tmp_path):
    """examples/willow.{png,json}: two regions swaying opposite ways, a stream, a static pin -> overlay and video."""
    args = ["--image", str(REPO / "examples" / "willow.png"), "--brush", str(REPO / "examples" / "willow.json")]
    assert main(["sample", CONFIG, *args, "--out", str(tmp_path), "sample.steps=4"]) == 0
    modes = [b["mode"] for b in json.loads((tmp_path / "sample.json").read_text())["brushes"]["brushes"]]
    assert sorted(modes) == ["flow", "static", "sway", "sway"]
    overlay = iio.imread(tmp_path / "sample_overlay.png")
    assert overlay.shape == (256, 256, 3)
    assert iio.imread(tmp_path / "sample_overlay.gif").shape == (17, 256, 256, 3)
    assert iio.imread(tmp_path / "sample.mp4").shape == (17, 64, 64, 3)


def test_converting_the_brush_model_to_diffusers_is_a_clear_error(tmp_path, capsys):
    assert main(["convert", str(REPO / "wanjax" / "assets" / "demo"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "model.motion, model.prediction, model.residual, vae.kind" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
