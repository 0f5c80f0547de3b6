"""What every attention implementation shares: the segment masks over time and the tile math of online softmax.

Dense attention (`dot_attention`), the blockwise and ring loops (`wanjax.parallel.ring`) and the Pallas kernels
(`wanjax.parallel.pallas`) build on these; `wanjax.model.attention` dispatches between them. Masks are predicates
on (query segment, key segment); see `wanjax.model.attention` for the token order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wanjax.errors import WanjaxError

MASKS = ("full", "causal", "window")


def segment_visible(q_seg: jax.Array, k_seg: jax.Array, mask: str, window: int | None) -> jax.Array:
    """Boolean visibility of key segments to query segments (broadcasting)."""
    if mask == "full":
        return jnp.ones(jnp.broadcast_shapes(q_seg.shape, k_seg.shape), bool)
    if mask == "causal":
        return k_seg <= q_seg
    if mask == "window":
        return (k_seg <= q_seg) & (k_seg > q_seg - window)
    raise WanjaxError(f"attention mask={mask!r} is not one of {', '.join(MASKS)}")


def segment_ranges_visible(
    q_lo: jax.Array, q_hi: jax.Array, k_lo: jax.Array, k_hi: jax.Array, mask: str, window: int | None
) -> jax.Array:
    """Can some query segment in [q_lo, q_hi] see some key segment in [k_lo, k_hi]? (k_lo > k_hi: no keys.)

    Exact for whole ranges, and never False when a pair is visible, so skipping on False is safe.
    """
    if mask == "full":
        return k_lo <= k_hi
    if mask == "causal":
        return (k_lo <= k_hi) & (k_lo <= q_hi)
    if mask == "window":
        # Some q - k must fall in [0, window - 1]; q - k spans [q_lo - k_hi, q_hi - k_lo].
        return (k_lo <= k_hi) & (k_lo <= q_hi) & (q_lo - k_hi < window)
    raise WanjaxError(f"attention mask={mask!r} is not one of {', '.join(MASKS)}")


def token_visible(
    q_pos: jax.Array,
    k_pos: jax.Array,
    *,
    tokens_per_frame: int,
    segment_frames: int,
    mask: str,
    window: int | None,
    sink_frames: int,
) -> jax.Array:
    """Boolean [Lq, Lk] visibility from absolute token positions q_pos [Lq], k_pos [Lk]."""
    q_frame, k_frame = q_pos // tokens_per_frame, k_pos // tokens_per_frame
    vis = segment_visible((q_frame // segment_frames)[:, None], (k_frame // segment_frames)[None, :], mask, window)
    return vis | (k_frame < sink_frames)[None, :]


def dot_attention(q: jax.Array, k: jax.Array, v: jax.Array, visible: jax.Array | None = None) -> jax.Array:
    """Softmax attention in fp32. q [B, Lq, N, K], k/v [B, Lk, N, K], visible [Lq, Lk] -> [B, Lq, N, K]."""
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("bqnk,bsnk->bnqs", q, k, preferred_element_type=jnp.float32) * scale
    if visible is not None:
        logits = jnp.where(visible[None, None], logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bnqs,bsnk->bqnk", probs, v)


# Tile math shared by the blockwise/ring loops (jnp) and the Pallas kernels. Leading dims are free
# ("..."): [B, N] in jnp, none inside a kernel. Per-row values (max, sum, lse, delta) keep a trailing 1.


def tile_scores(q: jax.Array, k: jax.Array) -> jax.Array:
    """Scaled logits [..., tq, tk] in fp32 from q [..., tq, K], k [..., tk, K]."""
    return jnp.einsum("...qk,...sk->...qs", q, k, preferred_element_type=jnp.float32) * q.shape[-1] ** -0.5


def online_softmax_merge(
    s: jax.Array, v: jax.Array, acc: jax.Array, mx: jax.Array, den: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Fold one tile of logits s [..., tq, tk] (-inf = hidden) and values v [..., tk, K] into the running
    (acc [..., tq, K] unnormalised output, mx [..., tq, 1] max, den [..., tq, 1] sum) of an online softmax.
    """
    new_mx = jnp.maximum(mx, s.max(-1, keepdims=True))
    # A row that has seen nothing yet keeps mx = -inf; shift it by 0 so exp gives 0, not NaN.
    shift = jnp.where(jnp.isneginf(new_mx), 0.0, new_mx)
    p = jnp.exp(s - shift)
    fix = jnp.exp(mx - shift)
    pv = jnp.einsum("...qs,...sk->...qk", p.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return acc * fix + pv, new_mx, den * fix + p.sum(-1, keepdims=True)


def tile_grads(
    q: jax.Array, k: jax.Array, v: jax.Array, do: jax.Array, lse: jax.Array, delta: jax.Array, visible: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Probabilities p and logit cotangents ds [..., tq, tk] of one tile pair (FlashAttention-2 backward).

    do [..., tq, K] output cotangent, lse [..., tq, 1] the forward's log-sum-exp, delta = rowsum(do * out).
    Then dq += ds k, dk += dsᵀ q, dv += pᵀ do.
    """
    p = jnp.where(visible, jnp.exp(tile_scores(q, k) - lse), 0.0)
    dp = jnp.einsum("...qk,...sk->...qs", do, v, preferred_element_type=jnp.float32)
    return p, p * (dp - delta) * q.shape[-1] ** -0.5


def check_attention_args(L: int, tokens_per_frame: int, segment_frames: int, mask: str, window: int | None) -> int:
    """Validate and return the number of latent frames F."""
    if tokens_per_frame < 1 or L % tokens_per_frame:
        raise WanjaxError(f"attention: sequence length {L} is not a multiple of tokens_per_frame={tokens_per_frame}")
    frames = L // tokens_per_frame
    if segment_frames < 1:
        raise WanjaxError(f"attention: segment_frames={segment_frames} must be >= 1")
    if mask not in MASKS:
        raise WanjaxError(f"attention mask={mask!r} is not one of {', '.join(MASKS)}")
    if mask == "window" and (window is None or window < 1):
        raise WanjaxError(f"attention mask='window' needs window >= 1 (segments, its own included), got {window}")
    return frames
