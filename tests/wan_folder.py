"""A tiny random "Wan folder" laid out like a Wan-AI/Wan2.1-*-Diffusers repo, written without PyTorch.

transformer/ (WanTransformer3DModel), vae/ (AutoencoderKLWan), text_encoder/ (UMT5EncoderModel), tokenizer/
(tokenizer.json, T5-shaped), scheduler/ and model_index.json: the real repo's folders at toy sizes.
"""

import json
from pathlib import Path

from flax import nnx

import wanjax
from wanjax.config import ModelConfig, VAEConfig
from wanjax.model.text import UMT5Config

TEXT = UMT5Config(vocab_size=131, d_model=64, d_kv=12, d_ff=96, num_layers=2, num_heads=4)
PIECES = ["▁the", "▁cat", "▁dog", "▁on", "▁mat", "▁a", "▁run", "ning", "▁sit", "s", "the", "cat", "a", "t", "o", "n"]


def write_tokenizer(folder: Path) -> Path:
    """A T5-shaped tokenizer.json: Unigram with <pad>=0, </s>=1, <unk>=2, Metaspace, `$A </s>` post-processor."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(p, -3.0 - 0.1 * i) for i, p in enumerate(PIECES)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<pad>", "</s>", "<unk>")])
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "T5Tokenizer", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "extra_ids": 0, "model_max_length": 512}))
    return folder


def write_wan_folder(folder: Path) -> Path:
    """The four models at toy sizes with random weights (the DiT reads the text encoder's 64-d states)."""
    dit = wanjax.WanDiT(ModelConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=TEXT.d_model,
                                    freq_dim=32), rngs=nnx.Rngs(0))  # fmt: skip
    wanjax.save_dit(dit, folder / "transformer")
    wanjax.save_vae(wanjax.WanVAE(VAEConfig.tiny(), rngs=nnx.Rngs(1)), folder / "vae")
    wanjax.save_text_encoder(wanjax.UMT5Encoder(TEXT, rngs=nnx.Rngs(2)), folder / "text_encoder")
    write_tokenizer(folder / "tokenizer")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "UniPCMultistepScheduler", "prediction_type": "flow_prediction", "flow_shift": 3.0})
    )
    index = {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanTransformer3DModel"],
             "vae": ["diffusers", "AutoencoderKLWan"], "text_encoder": ["transformers", "UMT5EncoderModel"],
             "tokenizer": ["transformers", "T5TokenizerFast"],
             "scheduler": ["diffusers", "UniPCMultistepScheduler"]}  # fmt: skip
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder
