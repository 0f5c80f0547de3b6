"""Flash attention equals dense attention: values and gradients, on both softmax paths, with ragged tiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wanjax.model.attention import attention, dot_attention
from wanjax.model.flash import EXP_SAFE, flash_attention

B, L, N, K = 2, 105, 3, 10  # L = 105: tiles of 7, or of 35 (its largest divisor <= 64)


def value_and_grads(fn, q, k, v, ct):
    return jax.jit(jax.value_and_grad(lambda q, k, v: jnp.sum(fn(q, k, v) * ct), argnums=(0, 1, 2)))(q, k, v)


@pytest.mark.parametrize("scale", [1.0, 6.0])
@pytest.mark.parametrize("tile", [7, 64])
def test_flash_matches_dense_values_and_gradients(scale, tile):
    q, k, v, ct = jax.random.normal(jax.random.key(0), (4, B, L, N, K))
    q, k = q * scale, k * scale
    # scale 1: every logit is bounded by EXP_SAFE (no row-max pass); scale 6: the bound fails, rows are shifted.
    bound = float(jnp.sqrt((q**2).sum(-1).max() * (k**2).sum(-1).max()) / np.sqrt(K))
    assert (bound <= EXP_SAFE) == (scale == 1.0)
    out = jax.jit(flash_attention, static_argnums=3)(q, k, v, tile)
    np.testing.assert_allclose(out, dot_attention(q, k, v), rtol=0, atol=1e-5 * float(jnp.abs(v).max()))
    ours = value_and_grads(lambda q, k, v: flash_attention(q, k, v, tile), q, k, v, ct)
    ref = value_and_grads(dot_attention, q, k, v, ct)
    assert abs(float(ours[0] - ref[0])) <= 1e-5 * abs(float(ref[0]))
    # Scale 6 puts logits near 36², where fp32 softmax gradients of either implementation carry ~1e-5 error.
    for a, b in zip(ours[1], ref[1], strict=True):
        assert float(jnp.abs(a - b).max() / jnp.abs(b).max()) <= (1e-5 if scale == 1.0 else 1e-4)


@pytest.mark.parametrize("impl", ["flash", "sdpa"])
def test_flash_and_sdpa_are_the_entry_points_full_mask(impl):
    """fp32: equal to dense (sdpa is jax.nn.dot_product_attention, XLA's implementation on CPU); bf16 stays bf16."""
    q, k, v = jax.random.normal(jax.random.key(1), (3, 2, 40, 2, 8))
    dense = attention(q, k, v, tokens_per_frame=4, impl="dense")
    np.testing.assert_allclose(attention(q, k, v, tokens_per_frame=4, impl=impl), dense, rtol=0, atol=1e-5)
    got = attention(*(a.astype(jnp.bfloat16) for a in (q, k, v)), tokens_per_frame=4, impl=impl)
    assert got.dtype == jnp.bfloat16
    assert float(jnp.abs(got.astype(jnp.float32) - dense).max()) <= 5e-2
