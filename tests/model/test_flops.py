"""The analytic FLOP model (wanjax.model.flops) against the matmuls JAX traces for a WanDiT."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.extend.core import jaxprs_in_params

from wanjax.config import ModelConfig
from wanjax.model.dit import WanDiT
from wanjax.model.flops import dit_flops

# Distinct small sizes so a formula that mixes up two dims fails loudly.
CFG = ModelConfig(dim=96, ffn_dim=160, num_heads=2, num_layers=3, text_dim=40, freq_dim=32)
SHAPE, M = (3, 6, 10), 7  # latent (F, H, W): 3 * 3 * 5 = 45 tokens; 7 text tokens


def _dot_flops(jaxpr) -> int:
    """2 * multiply-adds of every dot_general in a jaxpr, sub-jaxprs included, scan bodies times their length."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[d] for d in contract]))
        assert eqn.primitive.name not in ("cond", "while"), "a branch or loop of unknown count"
        times = eqn.params["length"] if eqn.primitive.name == "scan" else 1
        total += times * sum(_dot_flops(sub) for sub in jaxprs_in_params(eqn.params))
    return total


def trace(cfg):
    """jaxprs of the forward and of value_and_grad(mean(out²)) at latents [1, *SHAPE, C], M text tokens."""
    graphdef, params = nnx.split(WanDiT(cfg, rngs=nnx.Rngs(0)))
    k = jax.random.split(jax.random.key(0), 2)
    x = jax.random.normal(k[0], (1, *SHAPE, cfg.in_channels))
    t, ctx = jnp.array([500.0]), jax.random.normal(k[1], (1, M, cfg.text_dim))

    def forward(params):
        return nnx.merge(graphdef, params)(x, t, ctx)

    loss = lambda params: jnp.mean(jnp.square(forward(params)))  # noqa: E731
    return jax.make_jaxpr(forward)(params).jaxpr, jax.make_jaxpr(jax.value_and_grad(loss))(params).jaxpr


@pytest.mark.parametrize("first_frame_concat", [False, True])
def test_flop_formula_counts_every_traced_matmul(first_frame_concat):
    cfg = dataclasses.replace(CFG, first_frame_concat=first_frame_concat)
    fwd, step = trace(cfg)
    flops = dit_flops(cfg, *SHAPE, M)
    assert flops["forward"] == _dot_flops(fwd)
    # Backward: what JAX's transpose emits (no input-gradient matmul for the data-fed first linears).
    assert flops["step"] == _dot_flops(step)
    assert flops["backward"] < 2 * flops["forward"]


def test_flop_formula_scales_with_batch():
    one, two = dit_flops(CFG, *SHAPE, M), dit_flops(CFG, *SHAPE, M, batch=2)
    assert all(two[k] == 2 * one[k] for k in one)
