"""Checkpoint conversion without the reference: round trips and errors that list what is wrong."""

import json

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from wanjax.config import ModelConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import WEIGHTS, flat_params, read_folder
from wanjax.io.dit_params import load_dit, save_dit
from wanjax.model.dit import WanDiT

CFG = ModelConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, freq_dim=16)


@pytest.fixture
def folder(tmp_path):
    dit = WanDiT(CFG, rngs=nnx.Rngs(3))
    save_dit(dit, tmp_path / "transformer")
    return tmp_path / "transformer", dit


def test_save_load_round_trip_is_exact(folder):
    path, dit = folder
    back = load_dit(path)
    assert back.cfg == CFG
    a, b = flat_params(dit), flat_params(back)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


def test_sharded_folder_round_trip(tmp_path):
    dit = WanDiT(CFG, rngs=nnx.Rngs(4))
    save_dit(dit, tmp_path / "t", shard_bytes=50_000)
    index = json.loads((tmp_path / "t" / f"{WEIGHTS}.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    back = flat_params(load_dit(tmp_path / "t"))["proj_out/kernel"]
    np.testing.assert_array_equal(np.asarray(back), np.asarray(flat_params(dit)["proj_out/kernel"]))


def test_unexpected_keys_are_listed(folder):
    path, _ = folder
    tensors = load_file(str(path / WEIGHTS))
    tensors["blocks.0.attn1.mystery.weight"] = np.zeros(3, np.float32)
    save_file(tensors, str(path / WEIGHTS))
    with pytest.raises(WanjaxError) as e:
        load_dit(path)
    msg = str(e.value)
    assert "unexpected keys (1): blocks.0.attn1.mystery.weight" in msg


def test_missing_key_listed(folder):
    path, _ = folder
    tensors = load_file(str(path / WEIGHTS))
    del tensors["proj_out.bias"]
    save_file(tensors, str(path / WEIGHTS))
    with pytest.raises(WanjaxError, match=r"missing parameters \(1\): proj_out/bias"):
        load_dit(path)


def test_shape_mismatch_is_listed(folder):
    path, _ = folder
    config = json.loads((path / "config.json").read_text())
    config["ffn_dim"] = 128  # the weights say 96
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WanjaxError, match=r"shape mismatches \(3\): blocks/ffn/fc_in/bias: checkpoint \(2, 96\) vs"):
        load_dit(path)


def test_corrupt_safetensors_is_a_clear_error(folder):
    path, _ = folder
    data = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(WanjaxError, match="is not a readable safetensors file"):
        read_folder(path)


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(WanjaxError, match="is not a folder"):
        read_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WanjaxError, match="has no config.json"):
        read_folder(tmp_path / "empty")


def test_failed_write_leaves_the_old_folder_intact(folder, monkeypatch):
    path, _ = folder
    before = (path / WEIGHTS).read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.numpy.save_file", boom)
    with pytest.raises(OSError):
        save_dit(WanDiT(CFG, rngs=nnx.Rngs(9)), path)
    assert (path / WEIGHTS).read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["transformer"]


def test_missing_layer_is_named(folder):
    path, _ = folder
    tensors = load_file(str(path / WEIGHTS))
    del tensors["blocks.0.attn1.to_q.weight"]
    save_file(tensors, str(path / WEIGHTS))
    with pytest.raises(WanjaxError, match=r"layers \[0\] of blocks/attn1/to_q/kernel are missing"):
        load_dit(path)
