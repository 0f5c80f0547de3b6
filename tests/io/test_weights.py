"""wanjax checkpoints and `wanjax convert` both ways: same parameters, same samples."""

from pathlib import Path

import numpy as np
from flax import nnx

from wanjax.cli import main
from wanjax.config import load_config
from wanjax.io.convert import flat_params
from wanjax.io.weights import load_checkpoint, save_checkpoint
from wanjax.model.dit import WanDiT
from wanjax.model.vae import WanVAE

TINY = str(Path(__file__).parents[2] / "configs" / "tiny.yaml")
FAST = ["sample.frames=5", "sample.height=32", "sample.width=32", "sample.steps=2"]


def test_convert_round_trip_and_sampling_agree(tmp_path):
    cfg = load_config(TINY, ["model.num_layers=1"])
    save_checkpoint(tmp_path / "ours", cfg, WanDiT(cfg.model, rngs=nnx.Rngs(5)), WanVAE(cfg.vae, rngs=nnx.Rngs(6)))
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "diffusers")]) == 0
    assert (tmp_path / "diffusers" / "transformer" / "config.json").is_file()
    assert (tmp_path / "diffusers" / "vae" / "config.json").is_file()
    assert main(["convert", str(tmp_path / "diffusers"), str(tmp_path / "back")]) == 0
    _, dit_a, vae_a = load_checkpoint(tmp_path / "ours")
    _, dit_b, vae_b = load_checkpoint(tmp_path / "back")
    for a, b in ((dit_a, dit_b), (vae_a, vae_b)):
        fa, fb = flat_params(a), flat_params(b)
        assert fa.keys() == fb.keys()
        for k in fa:
            np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]))
    for name in ("ours", "diffusers"):
        assert main(["sample", TINY, "--ckpt", str(tmp_path / name), "--out", str(tmp_path / f"s-{name}"), *FAST]) == 0
    a, b = (np.load(tmp_path / f"s-{n}" / "sample.npz")["latents"] for n in ("ours", "diffusers"))
    np.testing.assert_array_equal(a, b)
