"""Query-tiled flash attention with a hand-written backward: full (unmasked) attention in O(L) memory.

The fastest full-mask attention on CPU (issue #9): heads run one after another (`lax.map`), queries in tiles
of `tile` rows against all L keys (`lax.scan`), so the [tile, L] scores stay in cache. Every product is a
plain [m, k] x [k, n] matmul (kᵀ and vᵀ are transposed once per head, dkᵀ and dvᵀ accumulated), so the matmul
library never re-packs a transposed operand per tile. The backward is FlashAttention-2's with one key block:
it recomputes the scores from q, k and the saved log-sum-exp, never the forward output. The residuals carry
the checkpoint name RESIDUALS, so a remat policy can keep them (`wanjax.model.dit.REMAT_POLICIES`).

Softmax skips its row-max pass when max|q|·max|k| bounds every logit by EXP_SAFE (exp can then neither
overflow nor underflow in fp32); otherwise it subtracts the row max as usual.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name

# The checkpoint name of attention residuals (output, log-sum-exp) in flash and ring attention: remat policies
# that keep it (`wanjax.model.dit.REMAT_POLICIES['dots']`) never rerun attention's forward in backward.
RESIDUALS = "attention"
# |logit| <= 64: exp in [1.6e-28, 6.2e27], so a row sum over 10^6 keys stays below fp32's max.
EXP_SAFE = 64.0
TILE = 256  # query rows per tile: [256, L] fp32 scores, 5.5 MB at L = 5,376


def flash_attention(q: jax.Array, k: jax.Array, v: jax.Array, tile: int = TILE) -> jax.Array:
    """softmax(q kᵀ / √K) v without the [L, L] matrix. q, k, v [B, L, N, K] -> [B, L, N, K].

    tile: query rows per step; the largest divisor of L that is <= tile is used.
    """
    B, L, N, K = q.shape
    heads = lambda a: a.transpose(0, 2, 1, 3).reshape(B * N, L, K)  # noqa: E731
    q = q * jnp.asarray(K**-0.5, q.dtype)  # the scale folded into q: its gradient follows by the chain rule
    o = _attend(heads(q), heads(k), heads(v), _divisor(L, tile))
    return o.reshape(B, N, L, K).transpose(0, 2, 1, 3)


def _divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _tiles(a: jax.Array, tile: int) -> jax.Array:
    """[L, X] -> [L / tile, tile, X]."""
    return a.reshape(a.shape[0] // tile, tile, a.shape[1])


def _head_forward(q: jax.Array, k: jax.Array, v: jax.Array, tile: int) -> tuple[jax.Array, jax.Array]:
    """One head, q (scaled), k, v [L, K] -> out [L, K], log-sum-exp of each score row [L, 1] (fp32)."""
    kT = k.T
    bound = jnp.sqrt(jnp.square(q).sum(-1).max() * jnp.square(k).sum(-1).max()).astype(jnp.float32)

    def rows(shift: bool):
        def one_tile(_, qi):
            s = jnp.dot(qi, kT, preferred_element_type=jnp.float32)  # [tile, L]
            m = s.max(-1, keepdims=True) if shift else jnp.zeros((s.shape[0], 1), s.dtype)
            p = jnp.exp(s - m) if shift else jnp.exp(s)
            total = p.sum(-1, keepdims=True)
            o = jnp.dot(p.astype(v.dtype), v, preferred_element_type=jnp.float32) / total
            return None, (o.astype(q.dtype), m + jnp.log(total))

        return lambda: lax.scan(one_tile, None, _tiles(q, tile))[1]

    o, lse = lax.cond(bound <= EXP_SAFE, rows(False), rows(True))
    return o.reshape(q.shape), lse.reshape(q.shape[0], 1)


def _head_backward(q, k, v, o, lse, do, tile: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One head's gradients (dq, dk, dv) [L, K] from the residuals and do [L, K]."""
    kT, vT = k.T, v.T
    delta = (o.astype(jnp.float32) * do.astype(jnp.float32)).sum(-1, keepdims=True)  # rowsum(dO ∘ O)

    def one_tile(carry, xs):
        dkT, dvT = carry
        qi, doi, lse_i, delta_i = xs
        p = jnp.exp(jnp.dot(qi, kT, preferred_element_type=jnp.float32) - lse_i)  # [tile, L]
        dvT = dvT + jnp.dot(doi.T, p.astype(do.dtype), preferred_element_type=jnp.float32)
        dp = jnp.dot(doi, vT, preferred_element_type=jnp.float32)
        ds = (p * (dp - delta_i)).astype(q.dtype)
        dq = jnp.dot(ds, k, preferred_element_type=jnp.float32)
        dkT = dkT + jnp.dot(qi.T, ds, preferred_element_type=jnp.float32)
        return (dkT, dvT), dq.astype(q.dtype)

    zero = jnp.zeros(kT.shape, jnp.float32)
    xs = tuple(_tiles(a, tile) for a in (q, do, lse, delta))
    (dkT, dvT), dq = lax.scan(one_tile, (zero, zero), xs)
    return dq.reshape(q.shape), dkT.T.astype(k.dtype), dvT.T.astype(v.dtype)


def _over_heads(fn, *args):
    """fn on each head of [G, L, K] arrays in turn."""
    return lax.map(lambda xs: fn(*xs), args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _attend(q: jax.Array, k: jax.Array, v: jax.Array, tile: int) -> jax.Array:
    """q (scaled), k, v [G, L, K] -> [G, L, K]."""
    return _over_heads(functools.partial(_head_forward, tile=tile), q, k, v)[0]


def _attend_forward(q, k, v, tile):
    o, lse = _over_heads(functools.partial(_head_forward, tile=tile), q, k, v)
    o, lse = checkpoint_name(o, RESIDUALS), checkpoint_name(lse, RESIDUALS)
    return o, (q, k, v, o, lse)


def _attend_backward(tile, residuals, do):
    return _over_heads(functools.partial(_head_backward, tile=tile), *residuals, do)


_attend.defvjp(_attend_forward, _attend_backward)
