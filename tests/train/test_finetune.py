"""Fine-tuning from pretrained Wan weights (train.init), freezing (train.trainable) and LoRA, against diffusers: a
tiny random Wan2.1-I2V folder written by diffusers, LoRA files loaded by diffusers' `load_lora_weights` and written
by diffusers / PEFT."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
import yaml
from diffusers import UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from flax import nnx
from PIL import Image
from reference_models import random_transformer, random_vae, rel_err

from wanjax.cli import main
from wanjax.config import Config, DataConfig, MeshConfig, ModelConfig, SampleConfig, TrainConfig, config_to_dict
from wanjax.errors import WanjaxError
from wanjax.io.convert import flat_params
from wanjax.io.dit_params import load_dit
from wanjax.io.lora_params import apply_lora, export_lora
from wanjax.io.weights import load_pipeline
from wanjax.model.dit import AttnSpec
from wanjax.model.lora import adapters, add_lora
from wanjax.train.finetune import build_model
from wanjax.train.loop import make_encoder
from wanjax.train.state import init_state, optimizer, trainable
from wanjax.train.step import brush_motion, loss_fn, make_train_step

pytestmark = pytest.mark.parity

DIT = ModelConfig(dim=48, ffn_dim=68, num_heads=2, num_layers=2, text_dim=20, freq_dim=32)
I2V = {"in_channels": 36, "image_dim": 44, "added_kv_proj_dim": 48}
VAE = {"base_dim": 6, "z_dim": 16, "dim_mult": [1, 2, 3, 3], "num_res_blocks": 1}
CLIP = {"hidden_size": 44, "intermediate_size": 52, "num_hidden_layers": 2, "num_attention_heads": 4,
        "patch_size": 7, "image_size": 28, "hidden_act": "gelu"}  # fmt: skip
SIZE, FRAMES = 32, 9


@pytest.fixture(scope="module")
def i2v_folder(tmp_path_factory):
    """A tiny random Wan2.1-I2V pipeline folder, every part written by diffusers / transformers."""
    folder = tmp_path_factory.mktemp("wan-i2v")
    torch.manual_seed(3)
    clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**CLIP)).eval()
    processor = transformers.CLIPImageProcessor(crop_size={"height": 28, "width": 28}, size={"shortest_edge": 28})
    parts = {"transformer": random_transformer(dataclasses.replace(DIT, **I2V)), "vae": random_vae(VAE, seed=2),
             "image_encoder": clip, "image_processor": processor}  # fmt: skip
    for name, module in parts.items():
        module.save_pretrained(folder / name)
    index = {"_class_name": "WanImageToVideoPipeline"} | {k: ["diffusers", "x"] for k in parts}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def finetune_config(folder, tmp_path, **train) -> Config:
    """The folder's architecture + a motion branch, BrushSprites clips at the VAE's size, one conditioning image."""
    pipe = load_pipeline(folder, image_encoder=False)
    model = dataclasses.replace(pipe.cfg.model, motion="splat", motion_dim=8)
    data = DataConfig(name="brushsprites", data_dir=str(tmp_path / "data"), frames=FRAMES, height=SIZE, width=SIZE,
                      train_clips=8, eval_clips=4)  # fmt: skip
    sample = SampleConfig(frames=FRAMES, height=SIZE, width=SIZE, steps=2, guidance_text=1.0, timesteps="wan")
    t = TrainConfig(workdir=str(tmp_path / "run"), init=str(folder), batch_size=4, warmup_steps=0, eval_every=0,
                    checkpoint_every=0, log_every=1, **train)  # fmt: skip
    mesh = MeshConfig(fsdp=4, tensor=2)  # the 8 test devices
    return Config(model=model, vae=pipe.cfg.vae, mesh=mesh, data=data, train=t, sample=sample).validate()


def brush_batch(cfg: Config) -> dict:
    from wanjax.data.sprites import brush_sprites

    clips = [brush_sprites(i, FRAMES, SIZE, SIZE) for i in range(2)]
    video = np.stack([c["video"] for c in clips]).astype(np.float32) / 127.5 - 1.0
    return brush_motion(cfg, {"video": video, "brushes": [c["brushes"] for c in clips]})


def test_init_with_a_motion_branch_is_the_pretrained_model_at_step_0(i2v_folder, tmp_path):
    cfg = finetune_config(i2v_folder, tmp_path)
    parts = build_model(cfg)
    pretrained = load_pipeline(i2v_folder)
    batch = make_encoder(cfg, parts.vae, parts.pipe)(brush_batch(cfg))
    assert batch["condition"].shape == (2, 3, 4, 4, 20) and batch["image_context"].shape == (2, 17, 44)
    key = jax.random.key(7)
    plain_cfg = dataclasses.replace(cfg, model=pretrained.cfg.model)
    without = {k: v for k, v in batch.items() if not k.startswith("motion_")}
    ours = float(loss_fn(parts.dit, batch, key, cfg, AttnSpec()))
    reference = float(loss_fn(pretrained.dit, without, key, plain_cfg, AttnSpec()))
    assert ours == reference  # exactly: the motion branch is zero-initialised (measured Δ = 0.0)
    # ... and its brushes reach the model once the branch has trained: a nonzero projection changes the loss
    kernel = parts.dit.motion_proj.kernel
    kernel.set_value(0.05 * jax.random.normal(jax.random.key(1), kernel.get_value().shape))
    assert abs(float(loss_fn(parts.dit, batch, key, cfg, AttnSpec())) - reference) > 1e-4

    # The run's first sample (train.steps=0 exports the init) is `wanjax sample` of the pretrained folder, bitwise.
    zero = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=0))
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config_to_dict(zero)))
    assert main(["train", str(tmp_path / "cfg.yaml")]) == 0
    first = tmp_path / "first.png"
    Image.fromarray(np.asarray(brush_batch(cfg)["video"][0, 0] * 127.5 + 127.5, np.uint8)).save(first)
    for name, ckpt in (("tuned", tmp_path / "run" / "export"), ("pretrained", i2v_folder)):
        assert main(["sample", str(tmp_path / "cfg.yaml"), "--ckpt", str(ckpt), "--image", str(first),
                     "--out", str(tmp_path / name)]) == 0  # fmt: skip
    tuned, base = (np.load(tmp_path / n / "sample.npz")["latents"] for n in ("tuned", "pretrained"))
    np.testing.assert_array_equal(tuned, base)
    assert (tmp_path / "run" / "export" / "image_encoder").is_dir()  # the init's CLIP travels with the export


def test_init_errors_name_the_field(i2v_folder, tmp_path):
    cfg = finetune_config(i2v_folder, tmp_path)
    wrong = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_layers=3))
    with pytest.raises(WanjaxError, match=r"model\.num_layers=3 \(checkpoint: 2\)"):
        build_model(wrong)
    nothing = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, trainable="no_such_layer"))
    with pytest.raises(WanjaxError, match="train.trainable matches no parameter"):
        init_state(build_model(nothing).dit, optimizer(nothing.train), 0, trainable(nothing.train))


def _state_leaves(state: nnx.State) -> dict:
    return {"/".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(state)}


@pytest.mark.parametrize("mode", ["lora", "trainable"])
def test_frozen_parameters_are_bitwise_unchanged_after_10_steps(i2v_folder, tmp_path, mode):
    train = {"lora_rank": 4, "lora_alpha": 8.0, "trainable": "motion_"} if mode == "lora" else {"trainable": "ffn/"}
    cfg = finetune_config(i2v_folder, tmp_path, lr=1e-2, steps=10, **train)
    parts = build_model(cfg)
    batch = make_encoder(cfg, parts.vae, parts.pipe)(brush_batch(cfg))
    tx = optimizer(cfg.train)
    graphdef, state = init_state(parts.dit, tx, 0, trainable(cfg.train))
    before = _state_leaves(state.frozen) | {f"trained:{k}": v for k, v in _state_leaves(state.params).items()}
    trained = {k.split(":", 1)[1] for k in before if k.startswith("trained:")}
    if mode == "lora":  # the adapters and the motion branch train, nothing else; no optimizer state for the rest
        assert trained and all(k.rsplit("/", 1)[1] in ("lora_a", "lora_b") or k.startswith("motion_") for k in trained)
    else:
        assert trained and all("ffn/" in k for k in trained)
    assert sum(np.size(a) for a in jax.tree.leaves(state.opt_state)) <= 2 * sum(before[f"trained:{k}"].size
                                                                               for k in trained) + 4  # fmt: skip
    step = make_train_step(graphdef, tx, cfg, None, state, batch)
    for _ in range(10):
        state, metrics = step(state, batch)
    after = _state_leaves(state.frozen)
    assert set(after) == {k for k in before if not k.startswith("trained:")}
    for k, v in after.items():
        np.testing.assert_array_equal(v, before[k])  # bitwise
    moved = [k for k, v in _state_leaves(state.params).items() if not np.array_equal(v, before[f"trained:{k}"])]
    # every trained parameter moved, but the text keys' adapters: one (zero) text token, softmax 1 whatever its key
    assert sorted(moved) == sorted(k for k in trained if "attn2/to_k/" not in k)


def _transformer_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 3, 4, 6, 16)).astype(np.float32)
    t = np.array([637.0], np.float32)
    ctx = rng.standard_normal((1, 7, DIT.text_dim)).astype(np.float32)
    return x, t, ctx


def _reference_output(transformer, x, t, ctx, image=None) -> np.ndarray:
    extra = {} if image is None else {"encoder_hidden_states_image": torch.from_numpy(image)}
    with torch.no_grad():
        out = transformer(torch.from_numpy(x.transpose(0, 4, 1, 2, 3).copy()), torch.from_numpy(t),
                          torch.from_numpy(ctx), return_dict=False, **extra)[0]  # fmt: skip
    return out.numpy().transpose(0, 2, 3, 4, 1)


def _t2v_pipeline(tmp_path):
    transformer = random_transformer(DIT)
    transformer.save_pretrained(tmp_path / "transformer")
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True)
    pipe = WanPipeline(transformer=transformer, vae=random_vae(VAE), text_encoder=None, tokenizer=None,
                       scheduler=scheduler)  # fmt: skip
    return pipe, load_dit(tmp_path / "transformer")


def test_our_lora_loads_in_diffusers(tmp_path):
    pipe, dit = _t2v_pipeline(tmp_path)
    add_lora(dit, 4, 8.0, TrainConfig().lora_targets, nnx.Rngs(0))
    state = nnx.state(dit, nnx.Param)
    noise = lambda p, v: v + 0.3 * jax.random.normal(jax.random.key(len(p)), v.shape) if p[-1] == "lora_b" else v  # noqa: E731
    nnx.update(dit, nnx.map_state(noise, state))
    x, t, ctx = _transformer_inputs()
    ours = np.asarray(dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx)))
    base = _reference_output(pipe.transformer, x, t, ctx)
    export_lora(adapters(dit), dit.cfg, tmp_path / "ours.safetensors")
    pipe.load_lora_weights(str(tmp_path / "ours.safetensors"))
    ref = _reference_output(pipe.transformer, x, t, ctx)
    assert rel_err(ref, base) > 0.05  # the adapters count
    assert rel_err(ours, ref) <= 1e-4  # measured 4.6e-7 (the adapters change the output by 35 %)


def test_a_diffusers_lora_loads_in_wanjax(tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe, dit = _t2v_pipeline(tmp_path)
    targets = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False,
                        alpha_pattern={"attn2.to_q": 2})  # fmt: skip
    pipe.transformer.add_adapter(config)
    WanPipeline.save_lora_weights(tmp_path / "lora", transformer_lora_layers=get_peft_model_state_dict(
        pipe.transformer), transformer_lora_adapter_metadata=config.to_dict())  # fmt: skip
    x, t, ctx = _transformer_inputs(1)
    ref = _reference_output(pipe.transformer, x, t, ctx)
    layers = apply_lora(dit, tmp_path / "lora" / "pytorch_lora_weights.safetensors")
    assert layers == 2 * 10  # 2 blocks x (8 attention + 2 FFN projections)
    ours = np.asarray(dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx)))
    assert rel_err(ours, ref) <= 1e-4  # measured 5.2e-7 (the adapters change the output by 35 %)


def test_lora_file_that_matches_no_layer_is_an_error(tmp_path):
    from safetensors.numpy import save_file

    _, dit = _t2v_pipeline(tmp_path)
    path = tmp_path / "sdxl.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": np.zeros((4, 8), np.float32),
               "unet.mid_block.attn.to_q.lora_A.weight": np.zeros((4, 8), np.float32)}, str(path))  # fmt: skip
    with pytest.raises(WanjaxError, match="2 keys match no layer of this model"):
        apply_lora(dit, path)


def test_lora_training_run_exports_and_merges(i2v_folder, tmp_path):
    """`wanjax train` with LoRA (+ the motion branch), `wanjax lora export RUN`, `wanjax lora merge`: the exported
    adapters are the run's, and folding them into the pretrained folder gives the run's export's kernels."""
    from safetensors.numpy import load_file

    cfg = finetune_config(i2v_folder, tmp_path, lr=1e-2, steps=3, lora_rank=4, trainable="motion_")
    (tmp_path / "lora.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
    assert main(["train", str(tmp_path / "lora.yaml")]) == 0
    run = tmp_path / "run"
    assert main(["lora", "export", str(run), str(tmp_path / "run.safetensors")]) == 0
    exported, written = (
        load_file(str(tmp_path / "run.safetensors")),
        load_file(str(run / "export" / "lora.safetensors")),
    )
    assert sorted(exported) == sorted(written) and len(exported) == 2 * 12 * 2  # 2 blocks x 12 layers x (A, B)
    for k in exported:  # the latest checkpoint's EMA adapters are those of the export
        np.testing.assert_array_equal(exported[k], written[k])
    assert (
        main(["lora", "merge", str(i2v_folder), f"{tmp_path / 'run.safetensors'}:1.0", str(tmp_path / "merged")]) == 0
    )
    merged, tuned, base = (
        load_pipeline(f, image_encoder=False).dit for f in (tmp_path / "merged", run / "export", i2v_folder)
    )
    merged, tuned, base = (dict(flat_params(m)) for m in (merged, tuned, base))
    for key in ("blocks/attn1/to_q/kernel", "blocks/ffn/fc_out/kernel"):
        assert rel_err(merged[key], base[key]) > 1e-3  # the adapters trained
        np.testing.assert_allclose(merged[key], tuned[key], rtol=0, atol=1e-6)
    for key in ("patch_embedding/kernel", "blocks/scale_shift_table", "blocks/attn2/add_k_proj/bias"):
        np.testing.assert_array_equal(merged[key], base[key])  # not adapted: bitwise the pretrained weights
        np.testing.assert_array_equal(tuned[key], base[key])
    # The LoRA trained here loads in diffusers' WanPipeline.load_lora_weights: the same transformer output.
    transformer = WanTransformer3DModel.from_pretrained(i2v_folder / "transformer").eval()
    pipe = WanPipeline(transformer=transformer, vae=None, text_encoder=None, tokenizer=None,
                       scheduler=UniPCMultistepScheduler())  # fmt: skip
    pipe.load_lora_weights(str(tmp_path / "run.safetensors"))
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((1, 3, 4, 6, 36)).astype(np.float32), np.array([421.0], np.float32)
    # 512 text tokens: diffusers' attention takes what precedes the last 512 context tokens as the image's
    ctx, image = (rng.standard_normal(s).astype(np.float32) for s in ((1, 512, DIT.text_dim), (1, 17, 44)))
    ref = _reference_output(pipe.transformer, x, t, ctx, image)
    dit = load_pipeline(i2v_folder, image_encoder=False).dit
    plain = np.asarray(dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx), image_context=jnp.asarray(image)))
    apply_lora(dit, tmp_path / "run.safetensors")
    ours = dit(jnp.asarray(x), jnp.asarray(t), jnp.asarray(ctx), image_context=jnp.asarray(image))
    assert rel_err(ref, plain) > 1e-3  # the trained adapters count
    assert rel_err(ours, ref) <= 1e-4
