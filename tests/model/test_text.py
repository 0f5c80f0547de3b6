"""UMT5 encoder and tokenizer vs transformers (random weights, tiny config), conversion, errors, sharding."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file
from wan_folder import write_tokenizer

from wanjax.config import MeshConfig
from wanjax.errors import WanjaxError
from wanjax.io.convert import flat_params
from wanjax.io.text_params import load_text_encoder, load_tokenizer, save_text_encoder
from wanjax.model.text import UMT5Config, UMT5Encoder, clean_prompt, encode_prompts, relative_position_buckets
from wanjax.parallel.mesh import make_mesh
from wanjax.parallel.partition import shard_module

# Distinct sizes (inner dim 4 x 12 = 48 != d_model) so a transposed or mixed-up axis fails loudly; the bucket
# settings are UMT5-XXL's, and M = 40 tokens crosses the exact/log bucket boundaries at distances 8, 16 and 32.
CFG = UMT5Config(vocab_size=131, d_model=64, d_kv=12, d_ff=96, num_layers=2, num_heads=4)
B, M = 3, 40
PROMPTS = ["the cat on the mat", "a dog", "the cat sits on the mat running the dog run the cat", "zzz cats"]


def _rel(a, b):
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def _inputs(seed=0):
    """ids [B, M] and a mask with right padding in two rows (the padded ids are arbitrary, as they may be)."""
    rng = np.random.default_rng(seed)
    mask = np.ones((B, M), np.int32)
    mask[1, 25:] = 0
    mask[2, 7:] = 0
    return rng.integers(0, CFG.vocab_size, (B, M)).astype(np.int32), mask


def _hf(model, ids, mask):
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(ids).long(), torch.from_numpy(mask).long()).last_hidden_state.float().numpy()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A transformers UMT5EncoderModel with every parameter random (norm scales too), saved sharded."""
    import torch
    from transformers import UMT5Config as HFConfig
    from transformers import UMT5EncoderModel

    torch.manual_seed(0)
    model = UMT5EncoderModel(HFConfig(**CFG.to_hf(), dropout_rate=0.0)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("umt5") / "text_encoder"
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="40KB")
    assert (folder / "model.safetensors.index.json").is_file()
    return model, folder


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.mark.parity
def test_relative_position_buckets_match_transformers(reference):
    import torch

    attn = reference[0].encoder.block[0].layer[0].SelfAttention
    rel = torch.arange(300)[None, :] - torch.arange(300)[:, None]
    for buckets, distance in ((32, 128), (32, 16), (16, 64)):
        attn.relative_attention_num_buckets, attn.relative_attention_max_distance = buckets, distance
        ours = relative_position_buckets(300, buckets, distance)
        np.testing.assert_array_equal(ours, attn._relative_position_bucket(rel).numpy())
    attn.relative_attention_num_buckets, attn.relative_attention_max_distance = 32, 128


@pytest.mark.parity
def test_forward_matches_transformers(reference):
    model, folder = reference
    encoder = load_text_encoder(folder)
    ids, mask = _inputs()
    ref = _hf(model, ids, mask)
    out = encoder(jnp.asarray(ids), jnp.asarray(mask))
    assert out.shape == (B, M, CFG.d_model) and out.dtype == jnp.float32
    assert _rel(out, ref) <= 1e-4  # every position, padded ones included (measured ~5e-7)
    assert _rel(encoder(jnp.asarray(ids)), _hf(model, ids, np.ones_like(mask))) <= 1e-4  # no mask = all tokens
    n_ours = sum(int(np.prod(v.shape)) for v in flat_params(encoder).values())
    assert n_ours == sum(p.numel() for p in model.parameters())


@pytest.mark.parity
def test_bfloat16_checkpoint_loads(reference, tmp_path):
    import torch

    model, _ = reference
    bf16 = type(model)(model.config).eval()
    bf16.load_state_dict(model.state_dict())
    bf16.to(torch.bfloat16).save_pretrained(tmp_path, safe_serialization=True)
    assert load_file(str(tmp_path / "model.safetensors"))["shared.weight"].dtype.name == "bfloat16"
    encoder = load_text_encoder(tmp_path)
    q = bf16.encoder.block[1].layer[0].SelfAttention.q.weight.float().detach().numpy()
    np.testing.assert_array_equal(encoder.blocks.q.kernel[...][1], q.T)
    half = load_text_encoder(tmp_path, dtype="bfloat16", param_dtype="bfloat16")
    assert half.blocks.q.kernel[...].dtype == jnp.bfloat16 and half.blocks.wo.kernel[...].dtype == jnp.float32
    ids, mask = _inputs()
    out = half(jnp.asarray(ids), jnp.asarray(mask))
    assert out.dtype == jnp.bfloat16 and _rel(out, encoder(jnp.asarray(ids), jnp.asarray(mask))) <= 5e-2


@pytest.mark.parity
def test_round_trip_and_transformers_reads_ours(reference, tmp_path):
    from transformers import UMT5EncoderModel

    model, folder = reference
    encoder = load_text_encoder(folder)
    save_text_encoder(encoder, tmp_path / "ours")
    again = load_text_encoder(tmp_path / "ours")
    for (path, a), b in zip(flat_params(encoder).items(), flat_params(again).values(), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)
    ids, mask = _inputs(1)
    theirs = UMT5EncoderModel.from_pretrained(tmp_path / "ours").eval()
    np.testing.assert_array_equal(_hf(theirs, ids, mask), _hf(model, ids, mask))
    # A folder holding the embedding under its other, tied name loads the same.
    tensors = load_file(str(tmp_path / "ours" / "model.safetensors"))
    tensors["encoder.embed_tokens.weight"] = tensors.pop("shared.weight")
    save_file(tensors, str(tmp_path / "ours" / "model.safetensors"))
    np.testing.assert_array_equal(load_text_encoder(tmp_path / "ours").embed[...], encoder.embed[...])


@pytest.mark.parity
@pytest.mark.parametrize("max_length", [6, 12])
def test_tokenizer_matches_transformers(tokenizer_folder, max_length):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tokenizer_folder)
    ref = hf(PROMPTS, padding="max_length", truncation=True, max_length=max_length, add_special_tokens=True)
    ids, mask = load_tokenizer(tokenizer_folder)(PROMPTS, max_length)
    assert ids.dtype == mask.dtype == np.int32 and ids.shape == (len(PROMPTS), max_length)
    np.testing.assert_array_equal(ids, ref["input_ids"])
    np.testing.assert_array_equal(mask, ref["attention_mask"])
    assert (ids[mask.sum(1) == max_length, -1] == 1).all()  # truncated prompts keep their </s>


@pytest.mark.parity
def test_encode_prompts_zeroes_past_each_prompt(reference, tokenizer_folder):
    from transformers import AutoTokenizer

    model, folder = reference
    hf = AutoTokenizer.from_pretrained(tokenizer_folder)
    n = 10
    prompts = ["  the cat&amp;amp;dog\n on  the mat ", "a dog", "the cat sits on the mat running the dog run the cat"]
    out = np.asarray(encode_prompts(load_text_encoder(folder), load_tokenizer(tokenizer_folder), prompts, n))
    ref = hf([clean_prompt(p) for p in prompts], padding="max_length", truncation=True, max_length=n)
    ids, mask = np.array(ref["input_ids"], np.int32), np.array(ref["attention_mask"], np.int32)
    hidden = _hf(model, ids, mask)
    for row, length in enumerate(mask.sum(1)):
        assert _rel(out[row, :length], hidden[row, :length]) <= 1e-4
        assert (out[row, length:] == 0).all()
    assert list(mask.sum(1)) != [n] * 3  # some padding was zeroed


def test_clean_prompt_is_diffusers_whitespace_and_html_cleaning():
    assert clean_prompt("  a &amp;amp; b\n\t c  ") == "a & b c"


@pytest.fixture(scope="module")
def ours_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ours") / "text_encoder"
    save_text_encoder(UMT5Encoder(CFG, rngs=nnx.Rngs(0)), folder)
    return folder


def _edit(src, dst, config=None, tensors=None):
    dst.mkdir()
    cfg = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps(config(cfg) if config else cfg))
    t = load_file(str(src / "model.safetensors"))
    save_file(tensors(t) if tensors else t, str(dst / "model.safetensors"))
    return dst


def test_bad_folders_are_clear_errors(ours_folder, tmp_path):
    with pytest.raises(WanjaxError, match="is not a folder"):
        load_text_encoder(tmp_path / "nowhere")
    with pytest.raises(WanjaxError, match="has no config.json"):
        load_text_encoder(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WanjaxError, match="has neither model.safetensors nor model.safetensors.index.json"):
        load_text_encoder(tmp_path)
    relu = _edit(ours_folder, tmp_path / "relu", config=lambda c: {**c, "feed_forward_proj": "relu"})
    with pytest.raises(WanjaxError, match="feed_forward_proj='relu': only 'gated-gelu'"):
        load_text_encoder(relu)
    t5 = _edit(ours_folder, tmp_path / "t5", config=lambda c: {**c, "model_type": "t5"})
    with pytest.raises(WanjaxError, match="model_type='t5': only 'umt5'"):
        load_text_encoder(t5)
    wide = _edit(ours_folder, tmp_path / "wide", config=lambda c: {**c, "d_ff": 97})
    with pytest.raises(WanjaxError, match=r"shape mismatches \(3\): blocks/wi_0/kernel: checkpoint \(2, 64, 96\)"):
        load_text_encoder(wide)
    drop = lambda t: {k: v for k, v in t.items() if k != "encoder.final_layer_norm.weight"}  # noqa: E731
    with pytest.raises(WanjaxError, match=r"missing parameters \(1\): final_norm"):
        load_text_encoder(_edit(ours_folder, tmp_path / "missing", tensors=drop))
    extra = lambda t: {**t, "lm_head.weight": t["shared.weight"]}  # noqa: E731
    with pytest.raises(WanjaxError, match=r"unexpected keys \(1\): lm_head.weight"):
        load_text_encoder(_edit(ours_folder, tmp_path / "extra", tensors=extra))
    with pytest.raises(WanjaxError, match="Wan repos ship tokenizer/tokenizer.json"):
        load_tokenizer(tmp_path)


def test_bad_inputs_are_clear_errors(ours_folder):
    encoder = load_text_encoder(ours_folder)
    ids = jnp.zeros((2, 5), jnp.int32)
    with pytest.raises(WanjaxError, match=r"input_ids have shape \(5,\).*expected integer token ids \[B, M\]"):
        encoder(ids[0])
    with pytest.raises(WanjaxError, match="dtype float32; expected integer token ids"):
        encoder(ids.astype(jnp.float32))
    with pytest.raises(WanjaxError, match=r"attention_mask has shape \(2, 4\) but input_ids \(2, 5\)"):
        encoder(ids, ids[:, :4])
    with pytest.raises(WanjaxError, match="dtype='float64'"):
        UMT5Encoder(UMT5Config(dtype="float64"), rngs=nnx.Rngs(0))


def test_sharded_equals_unsharded(ours_folder):
    ids, mask = _inputs(2)
    ref = load_text_encoder(ours_folder)(jnp.asarray(ids), jnp.asarray(mask))
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, ring=1, tensor=2))
    graphdef, params = nnx.split(shard_module(load_text_encoder(ours_folder), mesh))
    out = jax.jit(lambda p, i, m: nnx.merge(graphdef, p)(i, m))(params, ids, mask)
    assert _rel(out, ref) <= 1e-5
    spec = jax.sharding.PartitionSpec
    assert params["blocks"]["q"]["kernel"].get_value().sharding.spec == spec(None, "fsdp", "tensor")
    assert params["blocks"]["wo"]["kernel"].get_value().sharding.spec == spec(None, "tensor", "fsdp")
    assert params["embed"].get_value().sharding.spec == spec(None, "fsdp")
