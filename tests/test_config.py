"""Config loading: YAML overlays, presets, key=value overrides, errors that name the key."""

import dataclasses
from pathlib import Path

import pytest

from wanjax.config import Config, ModelConfig, check_frame_count, load_config
from wanjax.errors import WanjaxError

CONFIGS = Path(__file__).parents[1] / "configs"


def test_tiny_config_loads_and_overrides_apply():
    cfg = load_config(CONFIGS / "tiny.yaml", ["model.num_layers=3", "sample.solver=euler", "sample.shift=3"])
    assert isinstance(cfg, Config)
    assert cfg.model.num_layers == 3 and cfg.sample.solver == "euler" and cfg.sample.shift == 3.0


@pytest.mark.parametrize("name, preset", [("wan2.1-t2v-1.3b", "wan21_t2v_1_3b"), ("wan2.1-t2v-14b", "wan21_t2v_14b")])
def test_real_configs_have_the_wan_shapes(name, preset):
    model = load_config(CONFIGS / f"{name}.yaml").model
    assert dataclasses.replace(model, dtype="float32") == getattr(ModelConfig, preset)()


def test_every_shipped_config_loads():
    for path in CONFIGS.glob("*.yaml"):
        load_config(path)


@pytest.mark.parametrize(
    "override, match",
    [("model.num_layerz=2", "unknown config key model.num_layerz"),
     ("modle.dim=2", "unknown config key .modle"),
     ("model.num_layers=two", "model.num_layers: expected int, got 'two'"),
     ("model.cross_attn_norm=3", "model.cross_attn_norm: expected true/false"),
     ("model.patch_size=[1,2]", "model.patch_size: expected 3 values"),
     ("sample.solver=rk4", "sample.solver='rk4' is not one of euler, unipc"),
     ("sample.frames=80", "sample.frames=80 is not 4k\\+1; use 77 or 81"),
     ("model.num_heads=3", "model.dim=128 is not divisible by model.num_heads=3"),
     ("model.preset=wan3", "model.preset='wan3' is unknown"),
     ("novalue", "is not key=value"),
     ("train.eval_every=-1", "train.eval_every=-1: must be >= 0"),
     ("train.log_every=0", "train.log_every=0: must be >= 1"),
     ("train.loss=x0", "train.loss='x0' is not one of velocity, sample"),
     ("train.adam_b2=1.0", "train.adam_b2=1.0: must be in \\[0, 1\\)"),
     ("model.residual=first_frame", "model.residual=first_frame needs model.prediction=sample")],
)  # fmt: skip
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(WanjaxError, match=match):
        load_config(CONFIGS / "tiny.yaml", [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(WanjaxError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(WanjaxError, match="not valid YAML"):
        load_config(bad)


def test_frame_count_check():
    check_frame_count(961)
    with pytest.raises(WanjaxError, match="frames=16 is not 4k\\+1; use 13 or 17"):
        check_frame_count(16)
