"""train.causal_prob: steps trained the pyramid way (causal segment mask, one noise level per segment)."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import config_from_dict, load_config
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.train.loop import is_causal_step, train
from wanjax.train.state import init_state, optimizer
from wanjax.train.step import loss_fn, make_train_step

TINY = str(Path(__file__).parents[2] / "configs" / "tiny.yaml")


def test_causal_step_trains_with_the_causal_mask_and_noise_per_segment():
    cfg = config_from_dict(
        {
            "model": {"dim": 32, "ffn_dim": 64, "num_heads": 2, "num_layers": 1, "text_dim": 16, "freq_dim": 16},
            "mesh": {"segment_frames": 2},
            "train": {"warmup_steps": 0, "lr": 1e-3, "per_segment_prob": 0.0, "causal_prob": 0.5},
        }
    )
    tx = optimizer(cfg.train)
    graphdef, state = init_state(WanDiT(cfg.model, rngs=nnx.Rngs(0)), tx, 0)
    k = jax.random.split(jax.random.key(1), 2)
    batch = {"latents": jax.random.normal(k[0], (2, 6, 4, 4, 16)), "context": jax.random.normal(k[1], (2, 3, 16))}
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    model = nnx.merge(graphdef, state.params)
    want = {
        False: loss_fn(model, batch, key, cfg, AttnSpec()),
        True: loss_fn(model, batch, key, _per_segment(cfg), AttnSpec(mask="causal", segment_frames=2)),
    }
    for causal in (False, True):
        step = make_train_step(graphdef, tx, cfg, None, state, batch, causal=causal)
        _, metrics = step(jax.tree.map(jnp.copy, state), batch)
        np.testing.assert_allclose(float(metrics["loss"]), float(want[causal]), rtol=1e-6)
    assert abs(float(want[True]) - float(want[False])) > 1e-3  # the two ways are different training signals


def _per_segment(cfg):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, per_segment_prob=1.0))


def test_causal_steps_are_a_share_fixed_by_seed_and_step(tmp_path):
    cfg = config_from_dict({"train": {"causal_prob": 0.3, "seed": 4}})
    picks = [is_causal_step(cfg.train, s) for s in range(2000)]
    assert abs(np.mean(picks) - 0.3) < 0.03 and picks == [is_causal_step(cfg.train, s) for s in range(2000)]
    assert not any(is_causal_step(config_from_dict({}).train, s) for s in range(100))
    small = [
        "data.frames=9", "data.height=32", "data.width=32", "data.train_clips=16", "data.eval_clips=4",
        "train.batch_size=4", "mesh.fsdp=4", "mesh.tensor=2", "train.steps=6", "train.log_every=1",
        "train.causal_prob=0.5", "train.eval_every=6",
        "model.num_layers=1", f"data.data_dir={tmp_path / 'data'}", f"train.workdir={tmp_path / 'run'}",
    ]  # fmt: skip
    cfg = load_config(TINY, small)
    train(cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["causal"] for r in rows if "causal" in r]
    assert logged == [int(is_causal_step(cfg.train, s)) for s in range(6)] and 0 < sum(logged) < 6
