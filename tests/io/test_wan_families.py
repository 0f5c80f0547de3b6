"""Every Wan family's diffusers folder (tiny random weights, written by our savers): `wanjax convert` both ways
gives the same tensors and model_index.json, `wanjax sample` runs end to end without torch, and mismatched parts
or inputs are one-line errors."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

import wanjax
from wanjax.cli import main
from wanjax.config import ModelConfig, VAEConfig
from wanjax.errors import WanjaxError
from wanjax.io.clip_params import save_clip
from wanjax.io.convert import flat_params, load_flat_params
from wanjax.io.weights import COMPONENTS, IMAGE, load_pipeline
from wanjax.model.clip import CLIPVision, CLIPVisionConfig

REPO = Path(__file__).parents[2]
TINY = str(REPO / "configs" / "tiny.yaml")
FAST = ["sample.frames=5", "sample.steps=2"]
CLIP = CLIPVisionConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                        patch_size=8, image_size=32, hidden_act="gelu")  # fmt: skip
DIT = ModelConfig(dim=32, ffn_dim=48, num_heads=2, num_layers=1, text_dim=16, freq_dim=16)
I2V = dict(in_channels=36, image_dim=CLIP.hidden_size, added_kv_proj_dim=DIT.dim)
VAE22 = dataclasses.replace(VAEConfig.wan22(), base_dim=4, decoder_base_dim=6, num_res_blocks=1)  # stride 16
# family: (DiT fields, VAE, CLIP image encoder?, model_index.json fields)
FAMILIES = {
    "wan2.1-i2v": (I2V, VAEConfig.tiny(), True, {"_class_name": "WanImageToVideoPipeline"}),
    "wan2.1-flf2v": ({**I2V, "pos_embed_seq_len": 2 * CLIP.num_tokens}, VAEConfig.tiny(), True,
                     {"_class_name": "WanImageToVideoPipeline"}),
    "wan2.2-ti2v": ({"in_channels": 48, "out_channels": 48}, VAE22, False,
                    {"_class_name": "WanPipeline", "expand_timesteps": True}),
    "wan2.2-i2v-a14b": ({"in_channels": 36}, VAEConfig.tiny(), False,
                        {"_class_name": "WanImageToVideoPipeline", "boundary_ratio": 0.9}),
    "wan2.2-t2v-a14b": ({}, VAEConfig.tiny(), False, {"_class_name": "WanPipeline", "boundary_ratio": 0.875}),
}  # fmt: skip
SCRIPT = """
import json, sys
from wanjax.cli import main
for argv in json.loads(sys.argv[1]):
    assert main(argv) == 0, argv
assert "torch" not in sys.modules, "torch was imported"
print("no torch")
"""


def _random(make, seed: int):
    """A module with random N(0, 0.05) parameters, made without running its initialisers (which compile)."""
    module = nnx.eval_shape(make)
    rng = np.random.default_rng(seed)
    load_flat_params(
        module, {k: rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in flat_params(module).items()}
    )
    return module


def write_family(folder: Path, family: str) -> Path:
    """A diffusers Wan pipeline folder of `family` at toy sizes (no text encoder: samples are text-free)."""
    fields, vae, clip, index = FAMILIES[family]
    cfg = dataclasses.replace(DIT, **fields)
    experts = ["transformer", "transformer_2"] if "boundary_ratio" in index else ["transformer"]
    for seed, name in enumerate(experts):
        wanjax.save_dit(_random(lambda: wanjax.WanDiT(cfg, rngs=nnx.Rngs(0)), seed), folder / name)
    wanjax.save_vae(_random(lambda: wanjax.WanVAE(vae, rngs=nnx.Rngs(0)), 5), folder / "vae")
    parts = {name: ["diffusers", "WanTransformer3DModel"] for name in experts} | {"vae": COMPONENTS["vae"]}
    if index["_class_name"] == "WanImageToVideoPipeline":
        parts |= {name: [None, None] for name in IMAGE}
    if clip:
        save_clip(_random(lambda: CLIPVision(CLIP, rngs=nnx.Rngs(0)), 6), folder / "image_encoder")
        (folder / "image_processor").mkdir()
        processor = {"crop_size": {"height": 32, "width": 32}, "size": {"shortest_edge": 32}, "do_center_crop": True}
        (folder / "image_processor" / "preprocessor_config.json").write_text(json.dumps(processor))
        parts |= {name: COMPONENTS[name] for name in IMAGE}
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "UniPCMultistepScheduler"}))
    index = {"boundary_ratio": None, "expand_timesteps": False, **parts, "scheduler": COMPONENTS["scheduler"], **index}
    (folder / "model_index.json").write_text(json.dumps({**index, "_diffusers_version": "0.35.0"}))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{family: (diffusers folder, its wanjax conversion, that converted back)} and a first and last frame."""
    root = tmp_path_factory.mktemp("families")
    out = {}
    for family in FAMILIES:
        src = write_family(root / family, family)
        assert main(["convert", str(src), str(root / f"{family}-wanjax")]) == 0
        assert main(["convert", str(root / f"{family}-wanjax"), str(root / f"{family}-back")]) == 0
        out[family] = (src, root / f"{family}-wanjax", root / f"{family}-back")
    rng = np.random.default_rng(0)
    for name, shape in (("first", (32, 32, 3)), ("last", (32, 32, 3)), ("wide", (32, 64, 3)), ("odd", (48, 48, 3))):
        iio.imwrite(root / f"{name}.png", rng.integers(0, 256, shape, np.uint8))
    return out, root


@pytest.mark.parametrize("family", FAMILIES)
def test_convert_both_ways_keeps_every_tensor_and_the_index(folders, family):
    src, ours, back = folders[0][family]
    assert (ours / "dit_2.safetensors").is_file() == (src / "transformer_2").is_dir()
    assert (ours / "image_encoder").is_dir() == (ours / "image_processor").is_dir() == FAMILIES[family][2]
    for part in ("transformer", "transformer_2", "vae", "image_encoder"):
        if (src / part).is_dir():
            a, b = (load_file(str(next((f / part).glob("*.safetensors")))) for f in (src, back))
            assert a.keys() == b.keys(), part
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{part} {k}")
            assert json.loads((src / part / "config.json").read_text()) == json.loads(
                (back / part / "config.json").read_text()
            )
    for name in ("model_index.json", "scheduler/scheduler_config.json"):
        assert json.loads((src / name).read_text()) == json.loads((back / name).read_text()), name
    assert load_pipeline(ours).boundary_ratio == FAMILIES[family][3].get("boundary_ratio")


def test_every_family_samples_end_to_end_without_torch(folders, tmp_path):
    paths, root = folders
    first, last = str(root / "first.png"), str(root / "last.png")
    runs = {
        "wan2.1-i2v": ["--image", first],
        "wan2.1-flf2v": ["--image", first, "--last-image", last],
        "wan2.2-ti2v": ["--image", first],
        "wan2.2-i2v-a14b": ["--image", first, "--last-image", last],
        "wan2.2-t2v-a14b": ["sample.height=32", "sample.width=32"],
    }
    run = lambda ckpt, name, *a: ["sample", TINY, "--ckpt", str(ckpt), "--out", str(tmp_path / name), *FAST, *a]  # noqa: E731
    argv = {family: run(paths[family][0], family, *a) for family, a in runs.items()}
    # the converted checkpoints sample the same videos; a boundary no step falls below leaves expert 2 unused
    for family in ("wan2.1-flf2v", "wan2.2-i2v-a14b"):
        argv[f"{family}-wanjax"] = run(paths[family][1], f"{family}-wanjax", *runs[family])
    a14b = runs["wan2.2-i2v-a14b"]
    argv["one-expert"] = run(paths["wan2.2-i2v-a14b"][0], "one-expert", *a14b, "sample.boundary_ratio=0.01")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(list(argv.values()))], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0 and "no torch" in proc.stdout, proc.stderr[-3000:]
    got = {name: np.load(tmp_path / name / "sample.npz") for name in argv}
    for name, run in got.items():
        assert run["frames"].shape == (5, 32, 32, 3), name
        assert run["latents"].shape[:3] == ((2, 2, 2) if name == "wan2.2-ti2v" else (2, 4, 4)), name
    for family in ("wan2.1-flf2v", "wan2.2-i2v-a14b"):
        np.testing.assert_array_equal(got[f"{family}-wanjax"]["latents"], got[family]["latents"])
    assert np.abs(got["one-expert"]["latents"] - got["wan2.2-i2v-a14b"]["latents"]).max() > 1e-3
    meta = json.loads((tmp_path / "wan2.2-i2v-a14b" / "sample.json").read_text())
    assert meta["config"]["sample"]["boundary_ratio"] == 0.9 and meta["last_image"] == last


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_input_errors_name_the_fix(folders, tmp_path, capsys):
    paths, root = folders
    sample = lambda family, *a: ["sample", TINY, "--ckpt", str(paths[family][0]), "--out", str(tmp_path), *FAST, *a]  # noqa: E731
    err = _error(sample("wan2.1-i2v"), capsys)
    assert "is an image-to-video model (model.in_channels=36" in err and "--image PNG" in err
    err = _error(sample("wan2.2-ti2v", "--image", str(root / "odd.png")), capsys)
    assert "odd.png is 48x48 pixels: sample.height=48 is not a multiple of 32 (VAE stride 16 x patch)" in err
    first = ("--image", str(root / "first.png"))
    err = _error(sample("wan2.1-flf2v", *first, "--last-image", str(root / "wide.png")), capsys)
    assert "wide.png is 64x32 pixels but --image" in err and "is 32x32; give two images of one size" in err
    err = _error(sample("wan2.1-flf2v", *first), capsys)
    assert "first-last-frame model (model.pos_embed_seq_len=34" in err and "--last-image PNG" in err


def test_mismatched_parts_are_load_errors(folders, tmp_path, capsys):
    paths, _ = folders
    mixed = shutil.copytree(paths["wan2.2-ti2v"][0], tmp_path / "mixed")
    shutil.rmtree(mixed / "vae")
    shutil.copytree(paths["wan2.1-i2v"][0] / "vae", mixed / "vae")
    err = _error(["sample", TINY, "--ckpt", str(mixed), "--out", str(tmp_path / "o"), *FAST], capsys)
    assert "model.out_channels=48 but vae.z_dim=16: the DiT and the VAE belong to different models" in err
    err = _error(["convert", str(mixed), str(tmp_path / "converted")], capsys)  # convert checks the parts too
    assert "model.out_channels=48 but vae.z_dim=16" in err and not (tmp_path / "converted").exists()
    i2v = shutil.copytree(paths["wan2.1-i2v"][0], tmp_path / "i2v")
    shutil.rmtree(i2v / "image_processor")
    with pytest.raises(WanjaxError, match=r"has image_encoder/ but no image_processor/; an image encoder needs both"):
        load_pipeline(i2v)
    shutil.rmtree(i2v / "image_encoder")
    with pytest.raises(WanjaxError, match=r"reads CLIP image tokens \(model.image_dim=32\) but the folder has no"):
        load_pipeline(i2v)
    a14b = shutil.copytree(paths["wan2.2-i2v-a14b"][0], tmp_path / "a14b")
    shutil.rmtree(a14b / "transformer_2")
    with pytest.raises(WanjaxError, match="lists transformer_2 but the folder has no transformer_2/"):
        load_pipeline(a14b)
