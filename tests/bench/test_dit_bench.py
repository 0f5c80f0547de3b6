"""The DiT benchmark (wanjax.bench.dit) at a tiny shape, and its FLOP formula against the matmuls JAX traces."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.extend.core import jaxprs_in_params

from wanjax.bench import dit
from wanjax.bench.flops import dit_flops
from wanjax.config import ModelConfig
from wanjax.model.dit import WanDiT

pytestmark = pytest.mark.parity  # builds diffusers' WanTransformer3DModel

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


@pytest.fixture(scope="module")
def traced():
    model = WanDiT(CFG, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    x, t, ctx = (jnp.asarray(a) for a in dit._inputs(CFG, SHAPE, M))

    def forward(params):
        return nnx.merge(graphdef, params)(x, t, ctx)

    loss = lambda params: jnp.mean(jnp.square(forward(params)))  # noqa: E731
    return jax.make_jaxpr(forward)(params).jaxpr, jax.make_jaxpr(jax.value_and_grad(loss))(params).jaxpr


def test_flop_formula_counts_every_traced_matmul(traced):
    fwd, step = traced
    flops = dit_flops(CFG, *SHAPE, M)
    assert flops["forward"] == _dot_flops(fwd)
    # Backward: what JAX's transpose emits (no input-gradient matmul for the data-fed first linears).
    assert flops["step"] == _dot_flops(step)
    assert flops["backward"] < 2 * flops["forward"]


def test_flop_formula_scales_with_batch():
    one, two = dit_flops(CFG, *SHAPE, M), dit_flops(CFG, *SHAPE, M, batch=2)
    assert all(two[k] == 2 * one[k] for k in one)


def test_run_times_both_sides_on_the_same_weights():
    cfg = dataclasses.replace(CFG, num_layers=2)
    rows = dit.run(shapes=(SHAPE,), repeats=1, cfg=cfg, text_tokens=M, matmul_n=256, pause=0.0)
    (row,) = rows
    assert row["tokens"] == 45 and row["latent"] == [1, 16, *SHAPE] and row["attention"] == "dense"
    for key in ("wanjax_forward_s", "diffusers_forward_s", "wanjax_step_s", "diffusers_step_s"):
        assert row[key] > 0
    assert row["max_rel_error"] <= dit.PARITY
    assert row["flops_step"] == dit_flops(cfg, *SHAPE, M)["step"]
    assert row["speedup_step"] == pytest.approx(row["diffusers_step_s"] / row["wanjax_step_s"])
    assert row["mfu_step"] > 0 and isinstance(row["accept"], bool)
    table = dit.markdown(rows)
    assert table.count("\n|") == 2 and "fwd+bwd speed-up" in table
