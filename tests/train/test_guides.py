"""data.cache_guide: each clip's warp guide, stored once (wanjax.train.guides), is the one the model computes."""

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from wanjax.config import load_config
from wanjax.data.pipeline import build, config_batches
from wanjax.data.tfds import set_options
from wanjax.errors import WanjaxError
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.model.guide import warp_guide
from wanjax.model.pixel import make_vae
from wanjax.train import guides
from wanjax.train.loop import make_encoder
from wanjax.train.step import batch_motion, loss_fn

BRUSH = Path(__file__).parents[2] / "configs" / "brushsprites.yaml"
SMALL = ["data.frames=9", "data.height=32", "data.width=32", "data.train_clips=10", "data.eval_clips=4",
         "train.batch_size=4"]  # fmt: skip


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    cfg = load_config(BRUSH, [*SMALL, f"data.data_dir={tmp_path_factory.mktemp('data')}"])
    build(cfg.data.name, cfg.data.data_dir, **set_options(cfg.data))
    return cfg


def _batch(cfg):
    """A shuffled training batch through the input pipeline and the loop's encoder, and the warp guide the model
    computes for it [B, F, h, w, C] (float32)."""
    batch = make_encoder(cfg, make_vae(cfg.vae, nnx.Rngs(0)))(next(config_batches(cfg, "train")))
    m = cfg.model
    own = warp_guide(batch["latents"][:, 0], batch_motion(batch), m.guide_pixel_size, m.motion_subframes, 3)
    return batch, np.asarray(own)


def test_a_batch_carries_its_clips_guides_as_the_model_computes_them(cfg):
    host = next(config_batches(cfg, "train"))
    assert host["index"].tolist() != [0, 1, 2, 3]  # shuffled: the rows are looked up by clip index
    batch, own = _batch(cfg)
    assert batch["guide"].shape == (4, 2, 8, 8, 192) and batch["guide"].dtype == np.float32
    assert np.abs(own[:, 1:] - own[:, :1]).max() > 0.5  # the brushes move things: not frame 0 repeated
    err = np.abs(np.asarray(batch["guide"]) - own[:, 1:]).max()
    assert 0 < err <= 2**-11  # float16 rounding of values in [-1, 1], nothing more (measured 4.9e-4)
    table = guides.guide_table(cfg, "train")
    np.testing.assert_array_equal(table[host["index"]].astype(np.float32), next(config_batches(cfg, "train"))["guide"])


def test_the_loss_with_the_stored_guide_is_the_loss_with_the_guide_computed_in_the_step(cfg):
    """With the brushes kept, dropped, or some of each (train.motion_dropout), the stored guide gives the loss the
    model's own guide gives: to float32 rounding with the guide in float32, to 1e-4 with the stored float16 one."""
    losses = {}
    for dropout in (0.0, 0.5, 1.0):
        c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, motion_dropout=dropout))
        batch, own = _batch(c)
        model = WanDiT(c.model, rngs=nnx.Rngs(0))
        key = jax.random.key(3)
        in_step = float(loss_fn(model, {k: v for k, v in batch.items() if k != "guide"}, key, c, AttnSpec()))
        exact = float(loss_fn(model, batch | {"guide": own[:, 1:]}, key, c, AttnSpec()))
        stored = float(loss_fn(model, batch, key, c, AttnSpec()))
        assert abs(exact - in_step) <= 1e-6 * in_step and abs(stored - in_step) <= 1e-4 * in_step
        # ... because the step reads it: a guide 0.1 off moves the loss where the brushes are kept, not where dropped
        shifted = float(loss_fn(model, batch | {"guide": own[:, 1:] + 0.1}, key, c, AttnSpec()))
        assert (abs(shifted - in_step) > 1e-2 * in_step) == (dropout < 1)
        losses[dropout] = in_step
    assert len({round(v, 6) for v in losses.values()}) == 3  # dropping the brushes (and their guide) matters


def test_the_table_is_built_once_per_setting_and_atomically(cfg, monkeypatch):
    guides.guide_table(cfg, "eval")
    path = guides.table_path(cfg, "eval")
    assert path.exists() and not list(path.parent.glob(".*.part"))

    def rebuild(*args):
        raise AssertionError("built again")

    monkeypatch.setattr(guides, "_build", rebuild)
    assert guides.guide_table(cfg, "eval").shape == (4, 2, 8, 8, 192)
    fewer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_tracks=128))
    assert guides.table_path(fewer, "eval") != path  # another setting the guide depends on: another table


@pytest.mark.parametrize(
    "overrides",
    [["model.residual=first_frame"], ["model.motion=none"], ["data.stream=true"], ["data.data_dir=gs://bucket/data"]],
)
def test_the_guide_is_stored_only_for_a_warp_model_with_brushes_on_a_local_built_set(overrides):
    """Where data.cache_guide cannot apply, the config still loads (a notebook streams the brush config, a pod reads
    its data from a bucket) and the step computes the guide."""
    assert load_config(BRUSH).stores_guides and not load_config(BRUSH, overrides).stores_guides


def test_a_streamed_brush_batch_has_no_stored_guide():
    cfg = load_config(BRUSH, [*SMALL, "data.stream=true"])
    assert cfg.data.cache_guide and "guide" not in next(config_batches(cfg, "train"))


def test_a_guide_goes_to_a_warp_model_only():
    cfg = load_config(BRUSH, [*SMALL, "model.residual=first_frame", "data.cache_guide=false"])
    model = WanDiT(cfg.model, rngs=nnx.Rngs(0))
    x = np.zeros((1, 3, 8, 8, 192), np.float32)
    with pytest.raises(WanjaxError, match="only a warp model reads one"):
        model(x, np.zeros(1), np.zeros((1, 1, cfg.model.text_dim)), guide=x)
