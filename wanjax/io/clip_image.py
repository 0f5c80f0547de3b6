"""Images -> CLIP pixel values, as transformers' PIL `CLIPImageProcessor` makes them from a preprocessor_config.json.

Per image: converted to RGB (transparency composited onto white), shortest edge resized with PIL (bicubic in every
CLIP config), center-cropped (zero-padded where the crop is larger), rescaled by 1/255, normalised by
image_mean / image_std. Fields absent from the JSON take the processor's defaults (OpenAI CLIP at 224 px).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from wanjax.errors import WanjaxError

CONFIG = "preprocessor_config.json"


@dataclasses.dataclass(frozen=True)
class ImageProcessorConfig:
    """The fields of a CLIPImageProcessor preprocessor_config.json that shape pixel values."""

    do_convert_rgb: bool = True
    do_resize: bool = True
    size: int | tuple[int, int] = 224  # shortest edge, or (height, width)
    resample: int = Image.Resampling.BICUBIC
    do_center_crop: bool = True
    crop_size: tuple[int, int] = (224, 224)
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, ...] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, ...] = (0.26862954, 0.26130258, 0.27577711)

    @classmethod
    def from_hf(cls, c: dict) -> ImageProcessorConfig:
        fields = {f.name for f in dataclasses.fields(cls)} - {"size", "crop_size", "image_mean", "image_std"}
        kw = {k: c[k] for k in fields if k in c}
        if "size" in c:
            kw["size"] = _size(c["size"], "size", shortest_ok=True)
        if "crop_size" in c:
            kw["crop_size"] = _size(c["crop_size"], "crop_size", shortest_ok=False)
        kw.update({k: tuple(np.broadcast_to(c[k], 3).tolist()) for k in ("image_mean", "image_std") if k in c})
        return cls(**kw)


def _size(value: int | dict, name: str, shortest_ok: bool) -> int | tuple[int, int]:
    """transformers' size forms: an int (shortest edge for `size`, square for `crop_size`) or a dict."""
    if isinstance(value, int):
        return value if shortest_ok else (value, value)
    if shortest_ok and set(value) == {"shortest_edge"}:
        return value["shortest_edge"]
    if set(value) == {"height", "width"}:
        return value["height"], value["width"]
    raise WanjaxError(f"{CONFIG} {name}={value}: use an int, {{'height', 'width'}} or (size only) {{'shortest_edge'}}")


def load_image_processor(source: ImageProcessorConfig | str | Path | dict) -> ImageProcessorConfig:
    """A folder holding preprocessor_config.json (Wan's image_processor/), the file itself, or its parsed dict."""
    if isinstance(source, ImageProcessorConfig):
        return source
    if isinstance(source, dict):
        return ImageProcessorConfig.from_hf(source)
    path = Path(source)
    path = path / CONFIG if path.is_dir() else path
    if not path.is_file():
        raise WanjaxError(f"no {CONFIG} at {path}: Wan repos ship image_processor/{CONFIG}")
    try:
        return ImageProcessorConfig.from_hf(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise WanjaxError(f"{path} is not valid JSON: {e}") from None


def _to_pil(image: np.ndarray | Image.Image, convert_rgb: bool) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise WanjaxError(
                f"an image array has shape {image.shape} and dtype {image.dtype}; expected uint8 [H, W, 3] (RGB) "
                f"or a PIL image"
            )
        image = Image.fromarray(image)
    if not convert_rgb:
        return image
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def _resize(image: Image.Image, size: int | tuple[int, int], resample: int) -> Image.Image:
    if isinstance(size, int):  # the short side becomes `size`, the long side is scaled and truncated
        w, h = image.size
        short, long = min(w, h), max(w, h)
        long = int(size * long / short)
        size = (long, size) if w <= h else (size, long)
    return image.resize((size[1], size[0]), resample=resample)


def _center_crop(a: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    """[H, W, C] -> [ch, cw, C]: the centre (offsets rounded down), zero-padded first where the crop is larger."""
    (h, w), (ch, cw) = a.shape[:2], crop
    ph, pw = max(ch, h), max(cw, w)
    th, tw = math.ceil((ph - h) / 2), math.ceil((pw - w) / 2)
    padded = np.zeros((ph, pw, a.shape[2]), a.dtype)
    padded[th : th + h, tw : tw + w] = a
    top, left = (h - ch) // 2 + th, (w - cw) // 2 + tw
    return padded[max(0, top) : min(ph, top + ch), max(0, left) : min(pw, left + cw)]


def preprocess(
    images: Sequence[np.ndarray | Image.Image] | np.ndarray | Image.Image,
    processor: ImageProcessorConfig | str | Path | dict,
) -> np.ndarray:
    """uint8 [H, W, 3] arrays or PIL images (sizes may differ) -> pixel values [B, S, S, 3] float32 (S the crop size).

    `processor`: as `load_image_processor` takes. Equal to the processor's `pixel_values` moved to channels-last.
    """
    cfg = load_image_processor(processor)
    if isinstance(images, (np.ndarray, Image.Image)) and not (isinstance(images, np.ndarray) and images.ndim == 4):
        images = [images]
    out = []
    for image in images:
        pil = _to_pil(image, cfg.do_convert_rgb)
        if cfg.do_resize:
            pil = _resize(pil, cfg.size, cfg.resample)
        a = np.asarray(pil)
        if a.ndim != 3 or a.shape[-1] != 3:
            raise WanjaxError(f"an image of PIL mode {pil.mode!r} is not RGB; set do_convert_rgb or convert it")
        if cfg.do_center_crop:
            a = _center_crop(a, cfg.crop_size)
        # float64 product, then float32, then float32 arithmetic: the processor's order, so results agree exactly.
        x = (a.astype(np.float64) * cfg.rescale_factor).astype(np.float32) if cfg.do_rescale else a.astype(np.float32)
        if cfg.do_normalize:
            x = (x - np.asarray(cfg.image_mean, np.float32)) / np.asarray(cfg.image_std, np.float32)
        out.append(x)
    if len({x.shape for x in out}) > 1:
        raise WanjaxError(f"pixel values of different sizes {sorted({x.shape for x in out})}: enable do_center_crop")
    return np.stack(out)
