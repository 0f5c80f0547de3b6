"""The one attention entry point, with segment-level masks over time.

Tokens are in time-major order: token l belongs to latent frame l // tokens_per_frame, and frame f to
segment f // segment_frames. Masks are predicates on (query segment, key segment):
  full   every key
  causal key segment <= query segment
  window query - window < key segment <= query  (window counts segments, its own included)
plus `sink_frames`: keys in the first sink_frames latent frames are visible to every query (anchors).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wanjax.errors import WanjaxError
from wanjax.model.flash import flash_attention

MASKS = ("full", "causal", "window")
IMPLS = ("dense", "flash", "sdpa", "blockwise", "ring")


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


def attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    tokens_per_frame: int,
    segment_frames: int = 1,
    mask: str = "full",
    window: int | None = None,
    sink_frames: int = 0,
    impl: str = "dense",
    mesh: jax.sharding.Mesh | None = None,
    cache: tuple[jax.Array, jax.Array, jax.Array | int] | None = None,
) -> jax.Array:
    """Self-attention over a time-major video token sequence. q, k, v [B, L, N, K] -> [B, L, N, K].

    impl: dense (one [L, L] score matrix), flash (query tiles against all keys, O(L) memory, the fastest on
    CPU; full mask only: wanjax.model.flash), sdpa (`jax.nn.dot_product_attention`: cuDNN's flash attention on
    NVIDIA GPUs in bf16/fp16, XLA's dense attention elsewhere; full mask only), blockwise (tiles with online
    softmax and skipped masked tiles, one device), ring (ring attention over the mesh's 'ring' axis; needs
    `mesh`). Same numbers for all.
    cache: (K, V, start): K, V [B, Lc, N, K] hold tokens 0 … start - 1 of the clip (start may be traced; rows from
    start on are ignored), and q, k, v are tokens start … start + L - 1 (pyramid sampling); dense only.
    """
    L = q.shape[1]
    check_attention_args(L, tokens_per_frame, segment_frames, mask, window)
    masking = dict(segment_frames=segment_frames, mask=mask, window=window, sink_frames=sink_frames)
    if cache is not None:
        if impl != "dense":
            raise WanjaxError(f"attention with a K/V cache runs impl='dense', not {impl!r}")
        ck, cv, start = cache
        cached = jnp.arange(ck.shape[1])
        k_pos = jnp.concatenate([cached, start + jnp.arange(L)])
        vis = token_visible(start + jnp.arange(L), k_pos, tokens_per_frame=tokens_per_frame, **masking)
        vis = vis & jnp.concatenate([cached < start, jnp.ones(L, bool)])[None]
        return dot_attention(q, jnp.concatenate([ck, k], axis=1), jnp.concatenate([cv, v], axis=1), vis)
    if impl in ("flash", "sdpa"):
        if mask != "full":
            raise WanjaxError(f"attention impl={impl!r} takes mask='full' only, not {mask!r}: use impl='blockwise'")
        return flash_attention(q, k, v) if impl == "flash" else jax.nn.dot_product_attention(q, k, v)
    if impl == "dense":
        if mask == "full":
            return dot_attention(q, k, v)
        pos = jnp.arange(L)
        return dot_attention(q, k, v, token_visible(pos, pos, tokens_per_frame=tokens_per_frame, **masking))
    # Imported here: ring builds on the mask predicates of this module.
    from wanjax.parallel import ring

    if impl == "blockwise":
        return ring.blockwise_attention(q, k, v, tokens_per_frame=tokens_per_frame, **masking)
    if impl == "ring":
        if mesh is None:
            raise WanjaxError("attention impl='ring' needs a mesh (wanjax.make_mesh(cfg.mesh))")
        return ring.ring_attention(q, k, v, mesh=mesh, tokens_per_frame=tokens_per_frame, **masking)
    raise WanjaxError(f"attention impl={impl!r} is not one of {', '.join(IMPLS)}")
