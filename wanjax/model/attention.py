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
from wanjax.model.attention_parts import check_attention_args, dot_attention, token_visible
from wanjax.model.flash import flash_attention
from wanjax.parallel import ring

IMPLS = ("dense", "flash", "sdpa", "blockwise", "ring")


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
    if impl == "blockwise":
        return ring.blockwise_attention(q, k, v, tokens_per_frame=tokens_per_frame, **masking)
    if impl == "ring":
        if mesh is None:
            raise WanjaxError("attention impl='ring' needs a mesh (wanjax.make_mesh(cfg.mesh))")
        return ring.ring_attention(q, k, v, mesh=mesh, tokens_per_frame=tokens_per_frame, **masking)
    raise WanjaxError(f"attention impl={impl!r} is not one of {', '.join(IMPLS)}")
