"""Pallas TPU kernels for one ring step: ring.py's tile loops (forward and backward) as fused kernels.

Same contract as ring.py's jnp blocks; the tile math is shared (`tile_scores`, `online_softmax_merge`,
`tile_grads` in wanjax.model.attention), so the two cannot drift apart. Each kernel runs over the grid
(B, N, outer tiles, inner tiles); the tile-pair predicate `run [nq, nk]` comes in as a scalar-prefetch
operand (SMEM) and a pair with run == 0 is skipped with `pl.when`, as splash attention skips masked
blocks. The outputs' blocks stay resident in VMEM over the inner axis (the accumulator pattern of
jax's Pallas flash attention); their initial values come in aliased, so a ring step updates in place.
The backward is FlashAttention-2's two kernels: dq with keys inner, dk/dv with queries inner.

Off TPU the kernels run in Pallas interpret mode (how the tests check them on CPU). Layout follows
jax's TPU flash attention: per-token frame ids as [L, 128] (queries) and [8, L] (keys) so tiles are
lane/sublane aligned; tiles must be multiples of 8 (queries) and 128 (keys) on a real TPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from wanjax.model.attention_parts import online_softmax_merge, tile_grads, tile_scores

LANES, SUBLANES = 128, 8


def forward_block(masking, run, tq: int, tk: int, q, q_frame, k, v, k_frame, state):
    """Online-softmax merge of one K/V block. q [B, N, Lq, K], k/v [B, N, Lk, K], state (acc, mx, den)."""
    acc, mx, den = state
    operands = [(q, "q"), (k, "k"), (v, "k"), (acc, "q"), (mx, "q"), (den, "q")]
    return tuple(_call(_forward_kernel, masking, run, q_frame, k_frame, operands, 3, tq, tk, keys_outer=False))


def backward_block(masking, run, tq: int, tk: int, q, do, lse, delta, q_frame, k, v, k_frame, dq, dk, dv):
    """One K/V block's share of dq [B, N, Lq, K] and dk/dv [B, N, Lk, K]; lse/delta [B, N, Lq, 1]."""
    shared = [(q, "q"), (k, "k"), (v, "k"), (do, "q"), (lse, "q"), (delta, "q")]
    (dq,) = _call(_dq_kernel, masking, run, q_frame, k_frame, shared + [(dq, "q")], 1, tq, tk, keys_outer=False)
    dk, dv = _call(_dkv_kernel, masking, run, q_frame, k_frame, shared + [(dk, "k"), (dv, "k")], 2, tq, tk, True)
    return dq, dk, dv


def _call(kernel, masking, run, q_frame, k_frame, operands, n_out: int, tq: int, tk: int, keys_outer: bool):
    """pallas_call over (B, N, outer, inner) tiles; queries outer unless keys_outer.

    operands: (array [B, N, L, X], "q" | "k") tiled along L by query or key tiles; the last n_out are the
    initial values of the outputs.
    """
    B, N = operands[0][0].shape[:2]
    nq, nk = run.shape

    def tile_of(side, outer, inner):
        q_tile, k_tile = (inner, outer) if keys_outer else (outer, inner)
        return q_tile if side == "q" else k_tile

    def spec(x, side):
        rows = tq if side == "q" else tk
        return pl.BlockSpec((None, None, rows, x.shape[-1]), lambda b, n, o, i, run: (b, n, tile_of(side, o, i), 0))

    frame_specs = [
        pl.BlockSpec((tq, LANES), lambda b, n, o, i, run: (tile_of("q", o, i), 0)),
        pl.BlockSpec((SUBLANES, tk), lambda b, n, o, i, run: (0, tile_of("k", o, i))),
    ]
    frames = (
        jnp.broadcast_to(q_frame[:, None], (q_frame.shape[0], LANES)),
        jnp.broadcast_to(k_frame[None, :], (SUBLANES, k_frame.shape[0])),
    )
    outs = operands[-n_out:]
    first_out = 3 + len(operands) - n_out  # inputs are run, two frame arrays, then the operands
    return pl.pallas_call(
        functools.partial(kernel, masking, keys_outer),
        out_shape=[
            jax.ShapeDtypeStruct(x.shape, x.dtype, manual_axis_type=jax.typeof(x).manual_axis_type) for x, _ in outs
        ],
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=1,
            grid=(B, N, nk, nq) if keys_outer else (B, N, nq, nk),
            in_specs=frame_specs + [spec(x, side) for x, side in operands],
            out_specs=[spec(x, side) for x, side in outs],
        ),
        input_output_aliases={first_out + i: i for i in range(n_out)},
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "parallel", "arbitrary")),
        interpret=pltpu.InterpretParams() if jax.default_backend() != "tpu" else False,
    )(run.astype(jnp.int32), *frames, *(x for x, _ in operands))


def _resident(keys_outer: bool, run_ref, initial, outputs, body) -> None:
    """Load the outputs' initial values on the first inner step, then run `body` if the tile pair is live."""
    outer, inner = pl.program_id(2), pl.program_id(3)
    q_tile, k_tile = (inner, outer) if keys_outer else (outer, inner)

    @pl.when(inner == 0)
    def _load():
        for src, dst in zip(initial, outputs, strict=True):
            dst[...] = src[...]

    pl.when(run_ref[q_tile, k_tile] != 0)(body)


def _visible(masking, qf_ref, kf_ref):
    return masking.visible(qf_ref[:, :1], kf_ref[:1, :])


def _forward_kernel(masking, keys_outer, run_ref, qf_ref, kf_ref, q_ref, k_ref, v_ref, *state_refs):
    initial, outputs = state_refs[:3], state_refs[3:]

    def merge():
        s = jnp.where(_visible(masking, qf_ref, kf_ref), tile_scores(q_ref[...], k_ref[...]), -jnp.inf)
        acc, mx, den = online_softmax_merge(s, v_ref[...], *(r[...] for r in outputs))
        outputs[0][...], outputs[1][...], outputs[2][...] = acc, mx, den

    _resident(keys_outer, run_ref, initial, outputs, merge)


def _grads(masking, qf_ref, kf_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref):
    vis = _visible(masking, qf_ref, kf_ref)
    return tile_grads(q_ref[...], k_ref[...], v_ref[...], do_ref[...], lse_ref[...], delta_ref[...], vis)


def _dq_kernel(masking, keys_outer, run_ref, qf_ref, kf_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq0, dq):
    def add():
        _, ds = _grads(masking, qf_ref, kf_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref)
        dq[...] += jnp.einsum("qs,sk->qk", ds, k_ref[...], preferred_element_type=jnp.float32)

    _resident(keys_outer, run_ref, (dq0,), (dq,), add)


def _dkv_kernel(
    masking, keys_outer, run_ref, qf_ref, kf_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk0, dv0, dk, dv
):
    def add():
        p, ds = _grads(masking, qf_ref, kf_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref)
        dk[...] += jnp.einsum("qs,qk->sk", ds, q_ref[...], preferred_element_type=jnp.float32)
        dv[...] += jnp.einsum("qs,qk->sk", p, do_ref[...], preferred_element_type=jnp.float32)

    _resident(keys_outer, run_ref, (dk0, dv0), (dk, dv), add)
