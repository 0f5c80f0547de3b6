"""CLIPVision and preprocess vs transformers' CLIPVisionModel and CLIPImageProcessor (what Wan's I2V pipeline runs)."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from PIL import Image

from wanjax.errors import WanjaxError
from wanjax.io.clip_image import preprocess
from wanjax.io.clip_params import config_from_hf, load_clip, save_clip
from wanjax.io.convert import flat_params, read_folder
from wanjax.model.clip import ACTIVATIONS, CLIPVision, CLIPVisionConfig

pytestmark = pytest.mark.parity

# Distinct small sizes (head dim 16, 4 x 4 patches of 7 px) so a transposed or mixed-up axis fails loudly.
TINY = {"hidden_size": 64, "intermediate_size": 88, "num_hidden_layers": 3, "num_attention_heads": 4}
TINY.update(patch_size=7, image_size=28)
# transformers 5 resolves CLIPImageProcessor to a torchvision backend when torchvision is installed; the PIL one is
# the processor of transformers 4, which diffusers' Wan pipeline was written against (and 5's without torchvision).
PROCESSOR = transformers.CLIPImageProcessorPil if hasattr(transformers, "CLIPImageProcessorPil") else None
PROCESSOR = PROCESSOR or transformers.CLIPImageProcessor
WAN_PROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


@pytest.fixture(scope="module", params=["gelu", "quick_gelu"])
def reference(request, tmp_path_factory):
    """A transformers CLIPVisionModel with every parameter random (norm weights too), saved to a folder."""
    torch.manual_seed(0)
    ref = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY, hidden_act=request.param)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    folder = tmp_path_factory.mktemp("clip") / "image_encoder"
    ref.save_pretrained(folder)
    return ref, folder


def test_hidden_states_minus_2_match_transformers(reference):
    ref, folder = reference
    encoder = load_clip(folder)
    assert encoder.cfg.hidden_act == ref.config.hidden_act
    pixels = np.random.default_rng(1).standard_normal((2, 28, 28, 3)).astype(np.float32)
    with torch.no_grad():
        states = ref(pixel_values=torch.from_numpy(pixels.transpose(0, 3, 1, 2)), output_hidden_states=True)
    assert len(states.hidden_states) == TINY["num_hidden_layers"] + 1
    want = states.hidden_states[-2].numpy()
    ours = nnx.jit(CLIPVision.__call__)(encoder, jnp.asarray(pixels))
    assert ours.shape == want.shape == (2, 1 + 4 * 4, 64)
    err = _rel(ours, want)
    print(f"{ref.config.hidden_act}: max relative error {err:.2e}")
    assert err <= 1e-4
    assert _rel(want, states.hidden_states[-1].numpy()) > 0.1  # the layers differ: running one too many would fail


def test_round_trip_loads_in_transformers_with_no_missing_keys(reference, tmp_path):
    ref, folder = reference
    save_clip(load_clip(folder), tmp_path / "out", shard_bytes=100_000)  # several shards + model.safetensors.index
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    _, written = read_folder(tmp_path / "out", "model.safetensors")
    # transformers 4's layout (Wan's files), whatever the installed version saves (5 drops the prefix)
    want = {f"vision_model.{k.removeprefix('vision_model.')}": tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in written.items()} == want
    again = flat_params(load_clip(tmp_path / "out"))  # and we read that layout back
    assert all(np.array_equal(v, again[k]) for k, v in flat_params(load_clip(folder)).items())
    back = transformers.CLIPVisionModel.from_pretrained(tmp_path / "out")
    assert back.config.hidden_act == ref.config.hidden_act
    for (name, a), b in zip(ref.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_vit_h_14_has_the_reference_parameter_count():
    cfg = CLIPVisionConfig.vit_h_14()
    abstract = nnx.eval_shape(lambda: CLIPVision(cfg, rngs=nnx.Rngs(0)))
    ours = sum(int(np.prod(v.shape)) for v in flat_params(abstract).values())
    with torch.device("meta"):
        ref = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**vars(cfg)))
    assert ours == sum(p.numel() for p in ref.parameters()) == 630_766_080  # all of it: last layer + post norm too
    assert cfg.num_tokens == 257


def test_unsupported_config_value_is_one_line_naming_field_value_and_options():
    with pytest.raises(WanjaxError, match=r"^hidden_act='gelu_new': use one of gelu, quick_gelu$"):
        config_from_hf({**TINY, "hidden_act": "gelu_new"})


@pytest.mark.parametrize("name", ["gelu", "quick_gelu"])
def test_activations_match_transformers(name):
    """Pointwise, where the model test is least sensitive (tanh-GELU is within 5e-4 of GELU)."""
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    want = transformers.activations.ACT2FN[name](torch.from_numpy(x)).numpy()
    assert np.abs(np.asarray(ACTIVATIONS[name](jnp.asarray(x))) - want).max() <= 1e-6


def _images():
    rng = np.random.default_rng(2)
    shapes = [(37, 53), (300, 200), (224, 224)]  # landscape, portrait, already square
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    # Odd crop margins (at 28 and 224 px) pin the rounding of the crop offset; grey and transparent PIL images
    # the RGB conversion (transparency is composited onto white).
    grey = Image.fromarray(rng.integers(0, 256, (31, 50), dtype=np.uint8), "L")
    rgba = Image.fromarray(rng.integers(0, 256, (50, 31, 4), dtype=np.uint8), "RGBA")
    return [*arrays, grey, rgba]


SQUARE_28 = {"crop_size": {"height": 28, "width": 28}, "size": {"shortest_edge": 28}}
PADDED_28 = {"crop_size": {"height": 28, "width": 28}, "size": {"shortest_edge": 21}}  # crop larger: zero-padded


@pytest.mark.parametrize("config", [SQUARE_28, PADDED_28, WAN_PROCESSOR], ids=["28", "28-padded", "wan-224"])
def test_preprocess_matches_clip_image_processor(config, tmp_path):
    processor = PROCESSOR(**config)
    processor.save_pretrained(tmp_path)  # we read the folder's preprocessor_config.json, as from a Wan repo
    images = _images()
    want = processor(images=images, return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
    ours = preprocess(images, tmp_path)
    size = config["crop_size"]["height"]
    assert ours.shape == want.shape == (len(images), size, size, 3) and ours.dtype == np.float32
    err = float(np.abs(ours - want).max())
    print(f"{config['size']} -> crop {size}: max abs diff {err:.2e}")
    assert err <= 1e-6
