"""Ring attention over time segments, and its one-device form (blockwise attention).

Each device of the mesh's 'ring' axis holds the queries, keys and values of its own time segments. K/V
blocks and their frame indices travel around the ring (`ppermute`); every step is merged into an online
softmax (running max, sum and unnormalised output), so no device ever holds an [L, L] score matrix
(Liu et al. 2023, "Ring Attention with Blockwise Transformers", §3; the merge is FlashAttention's,
Dao et al. 2022). Within a step, queries and keys are cut into tiles, and a tile pair whose segments
cannot see each other is skipped with `lax.cond`: no FLOPs are spent on it.

Shapes: B batch, L tokens (time-major), N heads, K head dim, F latent frames, S segments, R ring size.
The core works head-major ([B, N, L, K]) so tiles are contiguous in the sequence dim.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name
from jax.sharding import Mesh

from wanjax.errors import WanjaxError
from wanjax.model.attention_parts import (
    check_attention_args,
    online_softmax_merge,
    segment_ranges_visible,
    segment_visible,
    tile_grads,
    tile_scores,
)
from wanjax.model.flash import RESIDUALS
from wanjax.parallel import pallas
from wanjax.parallel.mesh import AXES, check_divisible, logical_to_spec

RING = AXES[2]
BLOCK_SIZE = 512
# Pallas stays opt-in until it has run on a TPU: here it is only checked in interpret mode.
KERNELS = ("jnp", "pallas")


@dataclasses.dataclass(frozen=True)
class Masking:
    """Which keys a query may see, from latent frame indices (static; hashable for custom_vjp)."""

    mask: str
    window: int | None
    segment_frames: int
    sink_frames: int  # keys of these frames are left out here: the sink pass attends them
    frames: int | None = None  # frames from here on are the ring's end padding: hidden keys, unused queries

    def _keep(self, k_frame: jax.Array) -> jax.Array:
        keep = k_frame >= self.sink_frames
        return keep if self.frames is None else keep & (k_frame < self.frames)

    def visible(self, q_frame: jax.Array, k_frame: jax.Array) -> jax.Array:
        """[Lq, Lk] boolean from q_frame [Lq, 1] and k_frame [1, Lk] (2-d, as Pallas TPU kernels want them)."""
        sf = self.segment_frames
        return segment_visible(q_frame // sf, k_frame // sf, self.mask, self.window) & self._keep(k_frame)

    def may_see(self, q_frame: jax.Array, k_frame: jax.Array) -> jax.Array:
        """Scalar: can any query of this tile see any key of that tile? (False means the pair is skipped.)"""
        q_seg, k_seg, keep = q_frame // self.segment_frames, k_frame // self.segment_frames, self._keep(k_frame)
        k_lo = jnp.min(jnp.where(keep, k_seg, jnp.iinfo(k_seg.dtype).max))
        k_hi = jnp.max(jnp.where(keep, k_seg, -1))
        # A tile of padded queries only is skipped too: its rows are cut off, so nothing reads them.
        see = jnp.any(keep) & segment_ranges_visible(q_seg.min(), q_seg.max(), k_lo, k_hi, self.mask, self.window)
        return see if self.frames is None else see & (q_frame.min() < self.frames)


SINK = Masking("full", None, 1, 0)  # sink keys are visible to every query


@dataclasses.dataclass(frozen=True)
class Plan:
    """Static description of one ring (or one-device) attention call."""

    masking: Masking
    axis: str | None  # the ring axis inside shard_map; None on one device
    size: int  # ring size R
    tile: int  # query/key tile (tokens) of the ring blocks
    sink_tile: int  # key tile of the sink pass
    kernel: str  # inner block: "jnp" (lax.scan over tiles) or "pallas" (wanjax.parallel.pallas)


def _tiles(x: jax.Array, t: int) -> jax.Array:
    """Cut the sequence dim (2 of [B, N, L, ...]; 0 of frame ids [L]) into tiles of t, tile index first."""
    ax = 0 if x.ndim == 1 else 2
    x = x.reshape(x.shape[:ax] + (x.shape[ax] // t, t) + x.shape[ax + 1 :])
    return jnp.moveaxis(x, ax, 0)


def _untile(x: jax.Array) -> jax.Array:
    """Inverse of _tiles for [n, B, N, t, ...] -> [B, N, n·t, ...]."""
    x = jnp.moveaxis(x, 0, 2)
    return x.reshape(x.shape[:2] + (x.shape[2] * x.shape[3],) + x.shape[4:])


def _run_grid(masking: Masking, tq: int, tk: int, q_frame: jax.Array, k_frame: jax.Array) -> jax.Array:
    """[nq, nk] bool: the tile pairs that may hold a visible entry; the others are skipped."""
    see = jax.vmap(jax.vmap(masking.may_see, (None, 0)), (0, None))
    return see(q_frame.reshape(-1, tq), k_frame.reshape(-1, tk))


def _forward_block(plan: Plan, masking: Masking, tk: int, q, q_frame, k, v, k_frame, state):
    """Merge the attention of all local queries to one K/V block into the online-softmax state.

    q [B, N, Lq, K], k/v [B, N, Lk, K], q_frame [Lq], k_frame [Lk]; state = (acc [B, N, Lq, K] unnormalised
    output, mx [B, N, Lq, 1] running max, den [B, N, Lq, 1] running sum); tiles of plan.tile queries, tk keys.
    Returns the new state and the number of score entries computed (skipped tile pairs cost nothing).
    """
    run = _run_grid(masking, plan.tile, tk, q_frame, k_frame)
    block = pallas.forward_block if plan.kernel == "pallas" else _jnp_forward_block
    state = block(masking, run, plan.tile, tk, q, q_frame, k, v, k_frame, state)
    return state, run.sum(dtype=jnp.int32) * plan.tile * tk


def _jnp_forward_block(masking: Masking, run, tq: int, tk: int, q, q_frame, k, v, k_frame, state):
    def q_step(_, xs):
        qt, qf, run_row, *state = xs

        def k_step(state, ys):
            kt, vt, kf, go = ys

            def compute(state):
                s = jnp.where(masking.visible(qf[:, None], kf[None, :]), tile_scores(qt, kt), -jnp.inf)
                return online_softmax_merge(s, vt, *state)

            return lax.cond(go, compute, lambda c: c, state), None

        state, _ = lax.scan(k_step, tuple(state), (_tiles(k, tk), _tiles(v, tk), _tiles(k_frame, tk), run_row))
        return None, state

    _, state = lax.scan(q_step, None, (_tiles(q, tq), _tiles(q_frame, tq), run) + tuple(_tiles(a, tq) for a in state))
    return tuple(_untile(a) for a in state)


def _backward_block(plan: Plan, masking: Masking, tk: int, q, do, lse, delta, q_frame, k, v, k_frame, dq, dk, dv):
    """Add one K/V block's share to dq [B, N, Lq, K] and dk/dv [B, N, Lk, K] (FlashAttention-2 backward).

    do [B, N, Lq, K] output cotangent, lse/delta [B, N, Lq, 1] (see `tile_grads`).
    """
    run = _run_grid(masking, plan.tile, tk, q_frame, k_frame)
    block = pallas.backward_block if plan.kernel == "pallas" else _jnp_backward_block
    return block(masking, run, plan.tile, tk, q, do, lse, delta, q_frame, k, v, k_frame, dq, dk, dv)


def _jnp_backward_block(masking: Masking, run, tq: int, tk: int, q, do, lse, delta, q_frame, k, v, k_frame, dq, dk, dv):
    def q_step(dkv, xs):
        qt, dot, lset, deltat, qf, dqt, run_row = xs

        def k_step(dqt, ys):
            kt, vt, kf, dkt, dvt, go = ys

            def compute(grads):
                dqt, dkt, dvt = grads
                vis = masking.visible(qf[:, None], kf[None, :])
                p, ds = tile_grads(qt, kt, vt, dot, lset, deltat, vis)
                dqt = dqt + jnp.einsum("bnqs,bnsk->bnqk", ds, kt, preferred_element_type=jnp.float32)
                dkt = dkt + jnp.einsum("bnqs,bnqk->bnsk", ds, qt, preferred_element_type=jnp.float32)
                dvt = dvt + jnp.einsum("bnqs,bnqk->bnsk", p, dot, preferred_element_type=jnp.float32)
                return dqt, dkt, dvt

            dqt, dkt, dvt = lax.cond(go, compute, lambda g: g, (dqt, dkt, dvt))
            return dqt, (dkt, dvt)

        ys = (_tiles(k, tk), _tiles(v, tk), _tiles(k_frame, tk)) + dkv + (run_row,)
        dqt, dkv = lax.scan(k_step, dqt, ys)
        return dkv, dqt

    xs = tuple(_tiles(a, tq) for a in (q, do, lse, delta, q_frame, dq)) + (run,)
    (dk, dv), dq = lax.scan(q_step, (_tiles(dk, tk), _tiles(dv, tk)), xs)
    return _untile(dq), _untile(dk), _untile(dv)


def _rotate(plan: Plan, xs):
    """Send each device's blocks to the next device on the ring (device i -> i + 1)."""
    if plan.axis is None:
        return xs
    perm = [(i, (i + 1) % plan.size) for i in range(plan.size)]
    return jax.tree.map(lambda x: lax.ppermute(x, plan.axis, perm), xs)


def _forward(plan: Plan, q, k, v, q_frame, k_frame, sink_k, sink_v):
    """-> out [B, N, Lq, K], lse [B, N, Lq, 1] (fp32), work (score entries computed on this device)."""
    row = q[..., :1]
    state = (
        jnp.zeros_like(q, jnp.float32),
        jnp.full_like(row, -jnp.inf, jnp.float32),
        jnp.zeros_like(row, jnp.float32),
    )
    work = jnp.zeros((), jnp.int32)
    if sink_k is not None:
        # Sinks first, as one more "step" of the same merge; the ring below leaves their keys out, so
        # each key is counted once.
        sink_frame = jnp.zeros(sink_k.shape[2], jnp.int32)
        state, work = _forward_block(plan, SINK, plan.sink_tile, q, q_frame, sink_k, sink_v, sink_frame, state)

    def step(carry, _):
        state, kv = carry
        # Issued before this step's compute so the transfer can overlap it (the last one is idle traffic).
        nxt = _rotate(plan, kv)
        state, w = _forward_block(plan, plan.masking, plan.tile, q, q_frame, *kv, state)
        return (state, nxt), w

    ((acc, mx, den), _), works = lax.scan(step, (state, (k, v, k_frame)), length=plan.size)
    den = jnp.where(den > 0, den, 1.0)
    return (acc / den).astype(q.dtype), mx + jnp.log(den), work + works.sum()


def _backward(plan: Plan, res, dout):
    """Run the ring again: dK/dV accumulators travel with their K/V and are home after R steps."""
    q, k, v, q_frame, k_frame, sink_k, sink_v, out, lse = res
    do = dout.astype(jnp.float32)
    delta = jnp.sum(do * out.astype(jnp.float32), axis=-1, keepdims=True)
    dq = jnp.zeros_like(q, jnp.float32)
    dsink = None
    if sink_k is not None:
        sink_frame = jnp.zeros(sink_k.shape[2], jnp.int32)
        zeros = jnp.zeros_like(sink_k, jnp.float32)
        if plan.axis is not None:  # sink keys are replicated over the ring; their grads differ per device
            zeros = lax.pcast(zeros, plan.axis, to="varying")
        args = (q, do, lse, delta, q_frame, sink_k, sink_v, sink_frame, dq, zeros, zeros)
        dq, dsk, dsv = _backward_block(plan, SINK, plan.sink_tile, *args)
        if plan.axis is not None:
            dsk, dsv = lax.psum((dsk, dsv), plan.axis)
        dsink = (dsk.astype(sink_k.dtype), dsv.astype(sink_v.dtype))

    def step(carry, _):
        dq, kv, dkv = carry
        nxt = _rotate(plan, kv)
        dq, *dkv = _backward_block(plan, plan.masking, plan.tile, q, do, lse, delta, q_frame, *kv, dq, *dkv)
        return (dq, nxt, _rotate(plan, tuple(dkv))), None

    dkv = (jnp.zeros_like(k, jnp.float32), jnp.zeros_like(v, jnp.float32))
    (dq, _, (dk, dv)), _ = lax.scan(step, (dq, (k, v, k_frame), dkv), length=plan.size)
    return (dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)), dsink


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _core(plan: Plan, q, k, v, q_frame, k_frame, sink_k, sink_v):
    return _forward(plan, q, k, v, q_frame, k_frame, sink_k, sink_v)[0]


def _core_fwd(plan: Plan, q, k, v, q_frame, k_frame, sink_k, sink_v):
    # Residuals are the inputs, the output and its log-sum-exp: O(L / R) memory, no per-step intermediates.
    out, lse, _ = _forward(plan, q, k, v, q_frame, k_frame, sink_k, sink_v)
    out, lse = checkpoint_name(out, RESIDUALS), checkpoint_name(lse, RESIDUALS)
    return out, (q, k, v, q_frame, k_frame, sink_k, sink_v, out, lse)


def _core_bwd(plan: Plan, res, dout):
    (dq, dk, dv), dsink = _backward(plan, res, dout)
    return (dq, dk, dv, None, None) + (dsink or (None, None))


_core.defvjp(_core_fwd, _core_bwd)


def attend_local(
    plan: Plan,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_frame: jax.Array,
    k_frame: jax.Array,
    sink_k: jax.Array | None = None,
    sink_v: jax.Array | None = None,
    *,
    with_work: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Attention of this device's queries to the whole ring's keys, for any token placement.

    q/k/v [B, Lq, N, K] (this device's tokens, any order), q_frame/k_frame [Lq] int32 latent frame of each
    token, sink_k/sink_v [B, Ls, N, K] the sink keys (replicated) or None. Differentiable (custom VJP)
    unless with_work, which returns (out, work) from the forward alone, for tests and benchmarks.
    """
    heads = functools.partial(jnp.swapaxes, axis1=1, axis2=2)  # [B, L, N, K] <-> [B, N, L, K]
    # Tie the frame ids to q: computed from constants alone, a train step's scan over layers would hoist everything
    # that follows from them out of the loop, the inner tile loops stacking each tile pair's mask at [B, N, tq, tk]
    # (O(L²) memory: 214 GB per device for 32,760 tokens and 40 heads).
    q, q_frame, k_frame = lax.optimization_barrier((q, q_frame, k_frame))
    args = (plan, heads(q), heads(k), heads(v), q_frame, k_frame)
    sink = (None, None) if sink_k is None else (heads(sink_k), heads(sink_v))
    if with_work:
        out, _, work = _forward(*args, *sink)
        return heads(out), work
    return heads(_core(*args, *sink))


def _plan(
    tokens_per_frame: int,
    segment_frames: int,
    mask: str,
    window: int | None,
    sink_frames: int,
    axis: str | None,
    size: int,
    unit: int,
    block_size: int,
    kernel: str,
    frames: int | None = None,
) -> tuple[Plan, int]:
    """The plan and the sink length in tokens; `unit` = tokens of one contiguous run a tile must not cross."""
    if kernel not in KERNELS:
        raise WanjaxError(f"attention kernel={kernel!r} is not one of {', '.join(KERNELS)}")
    sink = sink_frames * tokens_per_frame if mask != "full" else 0  # under 'full' a sink adds nothing
    masking = Masking(mask, window, segment_frames, sink_frames if sink else 0, frames)
    return Plan(masking, axis, size, _tile(unit, block_size), _tile(sink, block_size), kernel), sink


def _tile(n: int, block_size: int) -> int:
    """The largest divisor of n that is <= block_size (tiles must split the sequence evenly)."""
    return max((d for d in range(1, min(n, block_size) + 1) if n % d == 0), default=1)


def blockwise_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    tokens_per_frame: int,
    segment_frames: int = 1,
    mask: str = "full",
    window: int | None = None,
    sink_frames: int = 0,
    block_size: int = BLOCK_SIZE,
    kernel: str = "jnp",
) -> jax.Array:
    """One-device attention in tiles of block_size tokens with online softmax. q/k/v [B, L, N, K] -> same.

    kernel: the inner block, "jnp" or "pallas" (a Pallas TPU kernel; interpreted off TPU).
    """
    L = q.shape[1]
    check_attention_args(L, tokens_per_frame, segment_frames, mask, window)
    plan, sink = _plan(tokens_per_frame, segment_frames, mask, window, sink_frames, None, 1, L, block_size, kernel)
    frame = jnp.arange(L, dtype=jnp.int32) // tokens_per_frame
    sink_kv = (k[:, :sink], v[:, :sink]) if sink else (None, None)
    return attend_local(plan, q, k, v, frame, frame, *sink_kv)


def ring_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    mesh: Mesh,
    tokens_per_frame: int,
    segment_frames: int = 1,
    mask: str = "full",
    window: int | None = None,
    sink_frames: int = 0,
    block_size: int = BLOCK_SIZE,
    kernel: str = "jnp",
    zigzag: bool | None = None,
    with_work: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Ring attention over the mesh's 'ring' axis. q/k/v [B, L, N, K] time-major -> [B, L, N, K].

    Batch may be sharded over ('data', 'fsdp') and heads over 'tensor'. kernel: as in blockwise_attention.
    zigzag (default: on for causal and window masks) balances the work; with_work also returns the score
    entries each device computed, [data·fsdp·ring·tensor] in mesh order (forward only).
    """
    B, L, N, _ = q.shape
    frames = check_attention_args(L, tokens_per_frame, segment_frames, mask, window)
    if RING not in mesh.shape:
        raise WanjaxError(f"attention impl='ring' needs a mesh with a {RING!r} axis; got axes {mesh.axis_names}")
    R = mesh.shape[RING]
    check_divisible("attention batch", B, mesh, AXES[:2])
    check_divisible("attention heads", N, mesh, AXES[3])
    # Each device holds whole segments, so a frame count the ring cannot split (241 is prime) is padded at
    # the end to R·segment_frames. Masking.frames hides the padded keys: under a causal or window mask no
    # real query could see them anyway, under 'full' all could. The padded queries' rows are cut off.
    pad = -frames % (R * segment_frames) * tokens_per_frame
    q, k, v = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in (q, k, v))
    local = (L + pad) // R
    # Zigzag (Brandon et al. 2023, "Striped Attention"; Llama 3 context parallelism): cut the sequence into
    # 2R chunks and give device i chunks i and 2R-1-i, so under a causal (or window) mask every device
    # holds one early and one late chunk and skips the same number of tile pairs; contiguous placement
    # leaves device 0 idle most of the ring while device R-1 computes every step. The price: q, k, v move
    # in and the output moves back once, about two ring steps' traffic. Keeping activations zigzagged
    # through the whole DiT would save it, but RoPE, timesteps and motion maps would all need to know.
    zigzag = (mask != "full" and R > 1) if zigzag is None else zigzag
    zigzag = zigzag and local % 2 == 0
    unit = local // 2 if zigzag else local
    args = (tokens_per_frame, segment_frames, mask, window, sink_frames, RING, R, unit, block_size, kernel)
    plan, sink = _plan(*args, frames if pad else None)

    def per_device(q, k, v, *sink_kv):
        i = lax.axis_index(RING)
        if zigzag:
            q, k, v = (_to_zigzag(x, R, i) for x in (q, k, v))
            pos = jnp.concatenate([i * unit + jnp.arange(unit), (2 * R - 1 - i) * unit + jnp.arange(unit)])
        else:
            pos = i * local + jnp.arange(local)
        frame = (pos // tokens_per_frame).astype(jnp.int32)
        home = functools.partial(_from_zigzag, R=R, i=i) if zigzag else lambda x: x
        if with_work:
            out, work = attend_local(plan, q, k, v, frame, frame, *sink_kv, with_work=True)
            return home(out), work.reshape(1)
        return home(attend_local(plan, q, k, v, frame, frame, *sink_kv))

    spec = logical_to_spec(("batch", "tokens", "heads", "kv"))
    sink_spec = logical_to_spec(("batch", None, "heads", "kv"))
    out_specs = (spec, jax.sharding.PartitionSpec(AXES)) if with_work else spec
    fn = jax.shard_map(
        per_device, mesh=mesh, in_specs=(spec,) * 3 + (sink_spec,) * (2 if sink else 0), out_specs=out_specs
    )
    out = fn(q, k, v, *((k[:, :sink], v[:, :sink]) if sink else ()))
    return (out[0][:, :L], out[1]) if with_work else out[:, :L]


def _owner(chunk: int, R: int) -> int:
    """The device that holds global chunk `chunk` (of 2R) under zigzag placement."""
    return chunk if chunk < R else 2 * R - 1 - chunk


def _to_zigzag(x: jax.Array, R: int, i: jax.Array) -> jax.Array:
    """Contiguous [B, 2C, ...] (chunks 2i, 2i+1) -> zigzag [B, 2C, ...] (chunks i, 2R-1-i) on device i.

    Even chunks land on distinct devices, and so do odd ones: two permutations. Device i gets its
    own chunk i from the even ones when i is even, so the slot order flips with i's parity.
    """
    C = x.shape[1] // 2
    even = lax.ppermute(x[:, :C], RING, [(c // 2, _owner(c, R)) for c in range(0, 2 * R, 2)])
    odd = lax.ppermute(x[:, C:], RING, [(c // 2, _owner(c, R)) for c in range(1, 2 * R, 2)])
    return jnp.where(i % 2 == 0, jnp.concatenate([even, odd], 1), jnp.concatenate([odd, even], 1))


def _from_zigzag(x: jax.Array, R: int, i: jax.Array) -> jax.Array:
    """Inverse of _to_zigzag."""
    C = x.shape[1] // 2
    first, second = x[:, :C], x[:, C:]
    even, odd = jnp.where(i % 2 == 0, first, second), jnp.where(i % 2 == 0, second, first)
    even = lax.ppermute(even, RING, [(_owner(c, R), c // 2) for c in range(0, 2 * R, 2)])
    odd = lax.ppermute(odd, RING, [(_owner(c, R), c // 2) for c in range(1, 2 * R, 2)])
    return jnp.concatenate([even, odd], 1)
