"""wanjax checkpoints for sampling: a folder with config.yaml, dit.safetensors and vae.safetensors.

Tensors are stored under our own parameter paths and layout (channels-last), so loading is a read, no
conversion. A diffusers pipeline folder (transformer/ + vae/, as Wan-*-Diffusers repos ship) is read too,
through the conversion tables. `convert` goes either way. Both kinds may hold a text encoder as the Wan repos do:
text_encoder/ (Hugging Face UMT5) + tokenizer/ (tokenizer.json), copied as they are. (Training checkpoints are
Orbax, train/.)
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import yaml
from flax import nnx

from wanjax.config import Config, config_from_dict, config_to_dict
from wanjax.errors import WanjaxError
from wanjax.io.convert import atomic_folder, check_params, flat_params, load_flat_params
from wanjax.io.dit_params import load_dit, save_dit
from wanjax.io.text_params import load_text_encoder, load_tokenizer
from wanjax.io.vae_params import load_vae, save_vae
from wanjax.model.dit import WanDiT
from wanjax.model.pixel import make_vae
from wanjax.model.text import Tokenizer, UMT5Encoder

CONFIG, DIT, VAE = "config.yaml", "dit.safetensors", "vae.safetensors"
TEXT = ("text_encoder", "tokenizer")


def is_diffusers_pipeline(folder: Path) -> bool:
    return (folder / "transformer" / "config.json").is_file() and (folder / "vae" / "config.json").is_file()


def save_checkpoint(folder: str | Path, cfg: Config, dit: WanDiT, vae: nnx.Module, text_from: Path | None = None):
    """Write config + weights atomically (a reader never sees half a checkpoint), with the text encoder and
    tokenizer folders of checkpoint `text_from` if it has them."""
    from safetensors.numpy import save_file

    cfg = dataclasses.replace(cfg, model=dit.cfg, vae=vae.cfg)
    with atomic_folder(folder) as tmp:
        (tmp / CONFIG).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        save_file({k: np.asarray(v) for k, v in flat_params(dit).items()}, str(tmp / DIT))
        save_file({k: np.asarray(v) for k, v in flat_params(vae).items()}, str(tmp / VAE))
        _copy_text(text_from, tmp)


def _copy_text(src: Path | None, dst: Path) -> None:
    for name in TEXT if src is not None else ():
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)


def load_text(folder: str | Path, dtype: str = "float32") -> tuple[UMT5Encoder, Tokenizer] | None:
    """(text encoder, tokenizer) of a checkpoint (either kind), or None when it has neither."""
    folder = Path(folder)
    have = [name for name in TEXT if (folder / name).is_dir()]
    if not have:
        return None
    if len(have) == 1:
        missing = next(name for name in TEXT if name not in have)
        raise WanjaxError(
            f"{folder} has {have[0]}/ but no {missing}/; a text encoder needs both (copy {missing}/ from the Wan "
            "repo the checkpoint came from)"
        )
    return load_text_encoder(folder / TEXT[0], dtype=dtype), load_tokenizer(folder / TEXT[1])


def _load_module(module, path: Path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise WanjaxError(f"{path} is not a readable safetensors file ({e})") from e
    check_params(arrays, {k: v.shape for k, v in flat_params(module).items()}, str(path))
    load_flat_params(module, arrays)
    return module


def load_checkpoint(folder: str | Path) -> tuple[Config, WanDiT, nnx.Module]:
    """(config, dit, vae) from a wanjax checkpoint or a diffusers pipeline folder."""
    folder = Path(folder)
    if is_diffusers_pipeline(folder):
        dit, vae = load_dit(folder / "transformer"), load_vae(folder / "vae")
        return Config(model=dit.cfg, vae=vae.cfg), dit, vae
    if not (folder / CONFIG).is_file():
        raise WanjaxError(
            f"{folder} is not a checkpoint: expected {CONFIG} + {DIT} + {VAE} (wanjax) or transformer/ + vae/ "
            "(a diffusers Wan pipeline folder)"
        )
    cfg = config_from_dict(yaml.safe_load((folder / CONFIG).read_text()))
    dit = _load_module(nnx.eval_shape(lambda: WanDiT(cfg.model, rngs=nnx.Rngs(0))), folder / DIT)
    vae = _load_module(nnx.eval_shape(lambda: make_vae(cfg.vae, nnx.Rngs(0))), folder / VAE)
    return cfg, dit, vae


def convert(src: str | Path, dst: str | Path) -> str:
    """diffusers pipeline folder -> wanjax checkpoint, or back. Returns which way it went."""
    src, dst = Path(src), Path(dst)
    cfg, dit, vae = load_checkpoint(src)
    if is_diffusers_pipeline(src):
        save_checkpoint(dst, cfg, dit, vae, text_from=src)
        return "diffusers -> wanjax"
    extras = {"model.motion": cfg.model.motion != "none", "model.first_frame_concat": cfg.model.first_frame_concat,
              "model.prediction": cfg.model.prediction != "velocity", "vae.kind": cfg.vae.kind != "wan"}  # fmt: skip
    if any(extras.values()):
        raise WanjaxError(
            f"{src} uses wanjax-only features ({', '.join(k for k, v in extras.items() if v)}) that the diffusers "
            "Wan layout cannot hold; only plain Wan2.1 models convert to diffusers"
        )
    with atomic_folder(dst) as tmp:
        save_dit(dit, tmp / "transformer")
        save_vae(vae, tmp / "vae")
        _copy_text(src, tmp)
    return "wanjax -> diffusers"
