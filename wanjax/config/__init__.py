"""Configs are data: frozen dataclasses with defaults and validation (`architecture`: the DiT and the VAE, with
presets; `sections`: the run), YAML overlays and `a.b=value` overrides (`load`).

    cfg = load_config("configs/tiny.yaml", ["model.num_layers=2", "sample.steps=4"])
"""

from wanjax.config.architecture import PRESETS, ModelConfig, VAEConfig, check_frame_count
from wanjax.config.load import (
    config_from_dict,
    config_to_dict,
    load_config,
    parse_overrides,
    settings_help,
    with_sample,
)
from wanjax.config.sections import Config, DataConfig, MeshConfig, SampleConfig, TrainConfig

__all__ = [
    "PRESETS",
    "Config",
    "DataConfig",
    "MeshConfig",
    "ModelConfig",
    "SampleConfig",
    "TrainConfig",
    "VAEConfig",
    "check_frame_count",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_overrides",
    "settings_help",
    "with_sample",
]
