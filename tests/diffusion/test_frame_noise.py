"""Noise correlated across latent frames (train.noise_correlation / sample.noise_correlation)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wanjax.config import Config, SampleConfig, TrainConfig
from wanjax.diffusion.flow import frame_noise
from wanjax.errors import WanjaxError
from wanjax.model.dit import AttnSpec
from wanjax.train.step import loss_fn


def _frame_correlation(e: np.ndarray, a: int, b: int) -> float:
    return float(np.corrcoef(e[:, a].ravel(), e[:, b].ravel())[0, 1])


def test_off_is_wans_independent_noise():
    key = jax.random.key(3)
    np.testing.assert_array_equal(frame_noise(key, (2, 5, 4, 4, 6)), jax.random.normal(key, (2, 5, 4, 4, 6)))


def test_frames_correlate_by_the_setting_and_each_value_stays_standard_normal():
    e = np.asarray(frame_noise(jax.random.key(0), (16, 6, 32, 32, 8), 0.7))
    assert e.std() == pytest.approx(1.0, abs=0.01)
    assert e.mean() == pytest.approx(0.0, abs=0.01)
    assert [_frame_correlation(e, 0, f) for f in (1, 5)] == pytest.approx([0.7, 0.7], abs=0.01)
    within = float(np.corrcoef(e[:, 2, :, :-1].ravel(), e[:, 2, :, 1:].ravel())[0, 1])  # neighbouring pixels
    assert abs(within) < 0.01


def test_the_train_step_noises_with_it():
    """loss_fn's x_t of zero latents is sigma x eps: its frames correlate as train.noise_correlation says."""
    seen = {}

    def model(x_t, t, context, motion, **_):
        seen["x_t"] = x_t
        return jnp.zeros_like(x_t)

    batch = {"latents": jnp.zeros((8, 4, 16, 16, 16)), "context": jnp.zeros((8, 1, 4))}
    for corr in (0.0, 0.8):
        cfg = Config(train=TrainConfig(noise_correlation=corr))
        loss_fn(model, batch, jax.random.key(1), cfg, AttnSpec())
        assert _frame_correlation(np.asarray(seen["x_t"]), 1, 3) == pytest.approx(corr, abs=0.02)


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_a_correlation_outside_0_1_is_an_error(bad):
    with pytest.raises(WanjaxError, match=r"train.noise_correlation=.*a correlation in \[0, 1\)"):
        TrainConfig(noise_correlation=bad).validate()
    with pytest.raises(WanjaxError, match=r"sample.noise_correlation=.*a correlation in \[0, 1\)"):
        SampleConfig(noise_correlation=bad).validate()
