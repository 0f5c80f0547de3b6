"""Orbax checkpoints: round trip incl. the data iterator, restore onto another mesh, corrupted-step fallback."""

from pathlib import Path

import grain
import jax
import numpy as np
import pytest
from flax import nnx

from wanjax.config import Config, MeshConfig, ModelConfig, TrainConfig
from wanjax.errors import WanjaxError
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.parallel.mesh import make_mesh
from wanjax.train.checkpoint import Checkpointer, abstract_like, fingerprint
from wanjax.train.loop import eval_loss_fn
from wanjax.train.state import init_state, optimizer, state_shardings

MODEL = ModelConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, freq_dim=16)


def _state(seed=0):
    return init_state(WanDiT(MODEL, rngs=nnx.Rngs(seed)), optimizer(TrainConfig()), seed)[1]


def _equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_with_data_iterator(tmp_path):
    it = iter(grain.MapDataset.range(100).shuffle(seed=1).batch(4))
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
    state = _state()
    next(it), next(it)
    ckpt.save(5, state, it)
    ckpt.wait()
    expected = [next(it) for _ in range(3)]
    fresh = iter(grain.MapDataset.range(100).shuffle(seed=1).batch(4))
    step, restored, meta = ckpt.restore(abstract_like(state), fresh)
    assert step == 5 and meta["step"] == 5
    _equal(restored, state)
    for e in expected:
        np.testing.assert_array_equal(next(fresh), e)


def test_restore_onto_a_different_mesh(tmp_path):
    mesh8 = make_mesh(MeshConfig(data=1, fsdp=2, ring=2, tensor=2))
    state = _state()
    sharded = jax.device_put(state, state_shardings(state, mesh8))
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
    ckpt.save(1, sharded)
    ckpt.wait()
    mesh1 = make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])
    _, restored, _ = ckpt.restore(abstract_like(state, state_shardings(state, mesh1)))
    _equal(restored, state)
    leaf = jax.tree.leaves(restored.params)[0]
    assert len(leaf.sharding.device_set) == 1
    # The same eval loss on 8 devices (sharded) and on the 1-device restore.
    graphdef = nnx.split(WanDiT(MODEL, rngs=nnx.Rngs(0)))[0]
    k = jax.random.split(jax.random.key(3), 2)
    batch = {"latents": jax.random.normal(k[0], (2, 2, 4, 4, 16)), "context": jax.random.normal(k[1], (2, 3, 24))}
    mcfg = MeshConfig(data=1, fsdp=2, ring=2, tensor=2)
    eval8 = eval_loss_fn(graphdef, Config(model=MODEL, mesh=mcfg), AttnSpec.from_config(mcfg, mesh8))
    eval1 = eval_loss_fn(graphdef, Config(model=MODEL), AttnSpec())
    a, b = float(eval8(sharded.params, sharded.frozen, batch)), float(eval1(restored.params, restored.frozen, batch))
    assert abs(a - b) <= 1e-5 * abs(b)


def _step_files(root: Path, step: int) -> list[Path]:
    return sorted(p for p in (root / str(step)).rglob("*") if p.is_file() and p.stat().st_size > 0)


def test_truncated_latest_step_falls_back_to_the_previous_one(tmp_path, caplog):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    good, newer = _state(0), _state(1)
    ckpt.save(1, good)
    ckpt.save(2, newer)
    ckpt.wait()
    for f in _step_files(tmp_path / "ckpt", 2):
        if "state" in f.parts:
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    step, restored, _ = Checkpointer(tmp_path / "ckpt", keep=3).restore(abstract_like(good))
    assert step == 1
    _equal(restored, good)
    assert f"step 2 at {tmp_path / 'ckpt'}/2" in caplog.text


def test_silently_corrupted_values_are_rejected_by_the_fingerprint(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    state = _state()
    ckpt.save(1, state)
    ckpt.wait()
    meta = tmp_path / "ckpt" / "1" / "meta" / "metadata"
    text = meta.read_text()
    fp = fingerprint(state)
    assert str(fp[0])[:6] in text
    meta.write_text(text.replace(str(fp[0])[:6], str(fp[0] + 1.0)[:6], 1))
    with pytest.raises(WanjaxError, match="does not match its saved fingerprint"):
        Checkpointer(tmp_path / "ckpt", keep=3).restore(abstract_like(state))


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(WanjaxError, match="no checkpoint in"):
        Checkpointer(tmp_path / "empty", keep=1).restore(abstract_like(_state()))


def test_relative_directory_saves_and_restores(tmp_path, monkeypatch):
    """train.workdir=runs/NAME (relative, as in the shipped configs) works: Orbax itself needs absolute paths."""
    monkeypatch.chdir(tmp_path)
    state = _state()
    ckpt = Checkpointer("runs/rel/checkpoints", keep=1)
    ckpt.save(3, state)
    ckpt.wait()
    assert (tmp_path / "runs/rel/checkpoints/3").is_dir()
    step, restored, _ = Checkpointer("runs/rel/checkpoints", keep=1).restore(abstract_like(state))
    assert step == 3
    _equal(restored, state)
