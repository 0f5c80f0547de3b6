"""The flow-matching loss: velocity error per frame, frame weights, and the clean-sample (x-loss) weighting."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wanjax.config import TrainConfig
from wanjax.diffusion.flow import add_noise, flow_loss
from wanjax.train.state import optimizer


def test_sample_loss_is_the_clean_sample_error():
    """With sigma given, the loss is |x0' - x0|² for x0' = x_t - sigma v' (the velocity error times sigma²)."""
    k = jax.random.split(jax.random.key(0), 3)
    x, eps, pred = (jax.random.normal(kk, (2, 3, 4, 4, 5)) for kk in k)
    sigma = jnp.array([[0.0, 0.3, 0.9], [0.0, 0.5, 0.05]])
    weight = jnp.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    x0_pred = add_noise(x, eps, sigma) - sigma[..., None, None, None] * pred
    per_frame = np.square(np.asarray(x0_pred - x)).mean(axis=(2, 3, 4))
    expected = (per_frame * np.asarray(weight)).sum() / 4
    assert float(flow_loss(pred, x, eps, weight, sigma)) == pytest.approx(expected, rel=1e-5)
    velocity = np.square(np.asarray(pred - (eps - x))).mean(axis=(2, 3, 4))
    assert float(flow_loss(pred, x, eps, weight)) == pytest.approx((velocity * np.asarray(weight)).sum() / 4, rel=1e-5)


def test_adam_b2_is_adams_second_moment_decay():
    params = {"w": jnp.ones(3)}
    grads = [{"w": jnp.array([1.0, -2.0, 0.5])}, {"w": jnp.array([0.1, 3.0, -1.0])}]

    def second_update(b2):
        tx = optimizer(TrainConfig(lr=0.1, warmup_steps=0, lr_schedule="constant", adam_b2=b2))
        state = tx.init(params)
        for g in grads:
            updates, state = tx.update(g, state, params)
        return np.asarray(updates["w"])

    reference = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.1, b2=0.95, weight_decay=0.0))
    state = reference.init(params)
    for g in grads:
        updates, state = reference.update(g, state, params)
    np.testing.assert_allclose(second_update(0.95), np.asarray(updates["w"]), rtol=1e-6)
    assert not np.allclose(second_update(0.95), second_update(0.999))
