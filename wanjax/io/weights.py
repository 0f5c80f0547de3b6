"""wanjax checkpoints for sampling: a folder with config.yaml, dit.safetensors and vae.safetensors.

Tensors are stored under our own parameter paths and layout (channels-last), so loading is a read, no
conversion. A diffusers Wan pipeline folder (transformer/ + vae/, as the Wan-AI `*-Diffusers` repos ship) is read
too, through the conversion tables: Wan2.1 T2V / I2V / FLF2V and Wan2.2 TI2V-5B / T2V-A14B / I2V-A14B. `convert`
goes either way. Both kinds may hold what the Wan repos hold besides: the second expert of Wan2.2 A14B
(transformer_2/, ours dit_2.safetensors; its boundary_ratio from model_index.json goes to config.yaml's
sample.boundary_ratio), the text encoder (text_encoder/ UMT5 + tokenizer/ tokenizer.json), Wan2.1-I2V/FLF2V's
CLIP image encoder (image_encoder/ + image_processor/), scheduler/ and model_index.json, copied as they are.
(Training checkpoints are Orbax, train/.)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from flax import nnx

from wanjax.config import Config, config_from_dict, config_to_dict
from wanjax.config.load import with_sample
from wanjax.errors import WanjaxError
from wanjax.io.clip_image import ImageProcessorConfig, load_image_processor
from wanjax.io.clip_params import config_from_hf, load_clip
from wanjax.io.convert import atomic_folder, check_params, flat_params, load_flat_params
from wanjax.io.dit_params import load_dit, save_dit
from wanjax.io.text_params import load_text_encoder, load_tokenizer
from wanjax.io.vae_params import load_vae, save_vae
from wanjax.model.clip import CLIPVision
from wanjax.model.dit import WanDiT
from wanjax.model.pixel import make_vae
from wanjax.model.text import Tokenizer, UMT5Encoder

CONFIG, DIT, DIT_2, VAE = "config.yaml", "dit.safetensors", "dit_2.safetensors", "vae.safetensors"
INDEX = "model_index.json"
TEXT = ("text_encoder", "tokenizer")
IMAGE = ("image_encoder", "image_processor")
COPIED = (*TEXT, *IMAGE, "scheduler")  # folders both kinds of checkpoint hold as the Wan repos ship them
PIPELINES = ("WanPipeline", "WanImageToVideoPipeline")
# model_index.json entries of the parts a folder holds (a written index keeps the source's own where it had one)
COMPONENTS = {
    "transformer": ["diffusers", "WanTransformer3DModel"],
    "transformer_2": ["diffusers", "WanTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLWan"],
    "text_encoder": ["transformers", "UMT5EncoderModel"],
    "tokenizer": ["transformers", "T5TokenizerFast"],
    "image_encoder": ["transformers", "CLIPVisionModel"],
    "image_processor": ["transformers", "CLIPImageProcessor"],
    "scheduler": ["diffusers", "UniPCMultistepScheduler"],
}


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """What sampling needs from a checkpoint. expert_2: Wan2.2 A14B's low-noise expert (same ModelConfig as dit),
    taking over below boundary_ratio x 1000 (also in cfg.sample.boundary_ratio). clip + image_processor: Wan2.1-I2V/
    FLF2V's CLIP image encoder (pixels [B, S, S, 3] -> tokens [B, 1 + (S/patch)^2, image_dim]) and its
    preprocessing; None for a DiT without image_dim."""

    cfg: Config
    dit: WanDiT
    vae: nnx.Module
    expert_2: WanDiT | None = None
    clip: CLIPVision | None = None
    image_processor: ImageProcessorConfig | None = None
    boundary_ratio: float | None = None


def is_diffusers_pipeline(folder: Path) -> bool:
    return (folder / "transformer" / "config.json").is_file() and (folder / "vae" / "config.json").is_file()


def save_checkpoint(
    folder: str | Path,
    cfg: Config,
    dit: WanDiT,
    vae: nnx.Module,
    text_from: Path | None = None,
    *,
    expert_2: WanDiT | None = None,
):
    """Write config + weights atomically (a reader never sees half a checkpoint), with the folders of checkpoint
    `text_from` that are copied as they are (text_encoder/, tokenizer/, image_encoder/, image_processor/,
    scheduler/, model_index.json) where it has them. expert_2: a second expert (dit_2.safetensors)."""
    from safetensors.numpy import save_file

    cfg = dataclasses.replace(cfg, model=dit.cfg, vae=vae.cfg)
    with atomic_folder(folder) as tmp:
        (tmp / CONFIG).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        for module, name in ((dit, DIT), (expert_2, DIT_2), (vae, VAE)):
            if module is not None:
                save_file({k: np.asarray(v) for k, v in flat_params(module).items()}, str(tmp / name))
        _copy_parts(text_from, tmp)


def _copy_parts(src: Path | None, dst: Path) -> None:
    for name in COPIED if src is not None else ():
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
    if src is not None and (src / INDEX).is_file():
        shutil.copyfile(src / INDEX, dst / INDEX)


def load_text(folder: str | Path, dtype: str = "float32") -> tuple[UMT5Encoder, Tokenizer] | None:
    """(text encoder, tokenizer) of a checkpoint (either kind), or None when it has neither."""
    folder = Path(folder)
    if not _pair(folder, TEXT, "a text encoder"):
        return None
    return load_text_encoder(folder / TEXT[0], dtype=dtype), load_tokenizer(folder / TEXT[1])


def _pair(folder: Path, names: tuple[str, str], what: str) -> bool:
    """Whether `folder` holds both folders `names`; neither: False; one: an error naming the other."""
    have = [name for name in names if (folder / name).is_dir()]
    if len(have) == 1:
        missing = next(name for name in names if name not in have)
        raise WanjaxError(
            f"{folder} has {have[0]}/ but no {missing}/; {what} needs both (copy {missing}/ from the Wan repo the "
            "checkpoint came from)"
        )
    return bool(have)


def read_model_index(folder: Path) -> dict:
    """The folder's model_index.json ({} without one); only Wan text/image-to-video pipelines are read."""
    path = folder / INDEX
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WanjaxError(f"{path} is not valid JSON: {e}") from None
    name = index.get("_class_name", PIPELINES[0])
    if name not in PIPELINES:
        raise WanjaxError(
            f"{path} _class_name={name}: wanjax reads {' and '.join(PIPELINES)} folders (Wan2.1 T2V/I2V/FLF2V, "
            "Wan2.2 TI2V/T2V/I2V)"
        )
    return index


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
    """(config, dit, vae) from a wanjax checkpoint or a diffusers pipeline folder (of two experts, the first;
    `load_pipeline` gives every part)."""
    pipe = load_pipeline(folder, second_expert=False, image_encoder=False)
    return pipe.cfg, pipe.dit, pipe.vae


def load_pipeline(folder: str | Path, *, second_expert: bool = True, image_encoder: bool = True) -> Pipeline:
    """Every part sampling needs, from a wanjax checkpoint or a diffusers Wan pipeline folder, checked to agree
    (one-line errors). second_expert=False: skip loading one; image_encoder=False: check the CLIP folders, skip
    loading the encoder."""
    folder = Path(folder)
    index = read_model_index(folder)
    if is_diffusers_pipeline(folder):
        dit, vae = load_dit(folder / "transformer"), load_vae(folder / "vae")
        has_2 = (folder / "transformer_2").is_dir()
        if not has_2 and (index.get("transformer_2") or [None])[0] is not None:
            raise WanjaxError(f"{folder / INDEX} lists transformer_2 but the folder has no transformer_2/; copy it")
        expert_2 = load_dit(folder / "transformer_2") if has_2 and second_expert else None
        cfg = with_sample(Config(model=dit.cfg, vae=vae.cfg), {"boundary_ratio": index.get("boundary_ratio")})
    elif (folder / CONFIG).is_file():
        cfg = config_from_dict(yaml.safe_load((folder / CONFIG).read_text()))
        dit = _load_module(nnx.eval_shape(lambda: WanDiT(cfg.model, rngs=nnx.Rngs(0))), folder / DIT)
        vae = _load_module(nnx.eval_shape(lambda: make_vae(cfg.vae, nnx.Rngs(0))), folder / VAE)
        expert_2 = None
        if (folder / DIT_2).is_file() and second_expert:
            expert_2 = _load_module(nnx.eval_shape(lambda: WanDiT(cfg.model, rngs=nnx.Rngs(0))), folder / DIT_2)
    else:
        raise WanjaxError(
            f"{folder} is not a checkpoint: expected {CONFIG} + {DIT} + {VAE} (wanjax) or transformer/ + vae/ "
            "(a diffusers Wan pipeline folder)"
        )
    cfg.check_parts()
    m = cfg.model
    if expert_2 is not None and expert_2.cfg != m:
        diff = [f.name for f in dataclasses.fields(m) if getattr(m, f.name) != getattr(expert_2.cfg, f.name)]
        raise WanjaxError(f"{folder}: the two experts differ in model.{', model.'.join(diff)}; they must be one shape")
    if index.get("expand_timesteps") and m.in_channels != m.out_channels:
        raise WanjaxError(
            f"{folder / INDEX} sets expand_timesteps (a clean first frame, Wan2.2-TI2V) but the DiT reads "
            f"{m.in_channels} channels for {m.out_channels}-channel latents (a channel condition); fix the index"
        )
    clip, processor = _image_encoder(folder, cfg, image_encoder)
    return Pipeline(cfg, dit, vae, expert_2, clip, processor, cfg.sample.boundary_ratio)


def _image_encoder(folder: Path, cfg: Config, load: bool) -> tuple[CLIPVision | None, ImageProcessorConfig | None]:
    """The CLIP image encoder and its preprocessing when the DiT reads image tokens (model.image_dim), checked
    against the DiT: its width is image_dim, and the DiT's position table (FLF2V) holds one or two images' tokens."""
    m = cfg.model
    have = _pair(folder, IMAGE, "an image encoder")
    if m.image_dim is None:
        return None, None
    if not have:
        raise WanjaxError(
            f"{folder}: the DiT reads CLIP image tokens (model.image_dim={m.image_dim}) but the folder has no "
            "image_encoder/ + image_processor/; copy both from the Wan2.1-I2V/FLF2V repo the DiT came from"
        )
    config = folder / IMAGE[0] / "config.json"
    if not config.is_file():
        raise WanjaxError(f"{config} is missing: image_encoder/ is a Hugging Face CLIPVisionModel folder")
    clip_cfg = config_from_hf(json.loads(config.read_text()))
    n = clip_cfg.num_tokens
    if clip_cfg.hidden_size != m.image_dim:
        raise WanjaxError(
            f"{folder}: image_encoder/ gives {clip_cfg.hidden_size}-d tokens but the DiT reads model.image_dim="
            f"{m.image_dim}; the image_encoder/ folder belongs to another model"
        )
    if m.pos_embed_seq_len not in (None, n, 2 * n):
        raise WanjaxError(
            f"{folder}: model.pos_embed_seq_len={m.pos_embed_seq_len} is not one or two images' {n} CLIP tokens; "
            "the image_encoder/ folder belongs to another model"
        )
    processor = load_image_processor(folder / IMAGE[1])
    crop = processor.crop_size if processor.do_center_crop else processor.size
    if crop != (clip_cfg.image_size,) * 2:
        raise WanjaxError(
            f"{folder}: image_processor/ makes {crop} pixel images but image_encoder/ reads {clip_cfg.image_size} x "
            f"{clip_cfg.image_size}; set crop_size to {clip_cfg.image_size}"
        )
    return (load_clip(folder / IMAGE[0]) if load else None), processor


def model_index(src: Path, cfg: Config, parts: Path) -> dict:
    """The model_index.json of a diffusers folder holding `parts`' folders: `src`'s own index where it has one,
    entries added for parts it does not list, boundary_ratio from cfg.sample."""
    m = cfg.model
    index = {"_class_name": "WanImageToVideoPipeline" if m.in_channels != m.out_channels else "WanPipeline"}
    index |= {name: entry for name, entry in COMPONENTS.items() if (parts / name).is_dir()}
    index |= {"boundary_ratio": None, "expand_timesteps": False} | read_model_index(src)
    return index | {"boundary_ratio": cfg.sample.boundary_ratio}


def convert(src: str | Path, dst: str | Path) -> str:
    """diffusers pipeline folder -> wanjax checkpoint, or back. Returns which way it went."""
    src, dst = Path(src), Path(dst)
    pipe = load_pipeline(src, image_encoder=False)
    cfg = pipe.cfg
    if is_diffusers_pipeline(src):
        save_checkpoint(dst, cfg, pipe.dit, pipe.vae, text_from=src, expert_2=pipe.expert_2)
        return "diffusers -> wanjax"
    m = cfg.model
    extras = {"model.motion": m.motion != "none", "model.first_frame_concat": m.first_frame_concat,
              "model.prediction": m.prediction != "velocity", "model.residual": m.residual != "none",
              "model.subframe_ramp": m.subframe_ramp, "vae.kind": cfg.vae.kind != "wan"}  # fmt: skip
    if any(extras.values()):
        raise WanjaxError(
            f"{src} uses wanjax-only features ({', '.join(k for k, v in extras.items() if v)}) that the diffusers "
            "Wan layout cannot hold; only plain Wan models convert to diffusers"
        )
    with atomic_folder(dst) as tmp:
        save_dit(pipe.dit, tmp / "transformer")
        if pipe.expert_2 is not None:
            save_dit(pipe.expert_2, tmp / "transformer_2")
        save_vae(pipe.vae, tmp / "vae")
        _copy_parts(src, tmp)
        (tmp / INDEX).write_text(json.dumps(model_index(src, cfg, tmp), indent=2))
    return "wanjax -> diffusers"
