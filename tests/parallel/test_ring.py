"""Blockwise and ring attention equal dense attention (forward and gradients), skip masked work, and
balance it over the ring.

Shapes use distinct small numbers: B=2 batch, F=16 latent frames of T=5 tokens (L=80), N=3 heads, K=7.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wanjax.config import MeshConfig
from wanjax.errors import WanjaxError
from wanjax.model.attention import attention
from wanjax.parallel import ring
from wanjax.parallel.mesh import make_mesh

B, F, T, N, K = 2, 16, 5, 3, 7
MASKS = {  # name -> (mask, window, sink_frames)
    "full": ("full", None, 0),
    "full+sink": ("full", None, 2),
    "causal": ("causal", None, 0),
    "causal+sink": ("causal", None, 2),
    "window2": ("window", 2, 0),
    "window2+sink": ("window", 2, 2),
}
# (ring size, segment_frames, block_size): 1-2 segments per zigzag chunk, tiles from 1 frame to a whole chunk.
RINGS = [(2, 2, 5), (4, 1, 10), (8, 2, 512)]


def inputs(b=B, n=N, frames=F):
    q, k, v, ct = jax.random.normal(jax.random.key(0), (4, b, frames * T, n, K))
    return q, k, v, ct


def ring_mesh(size):
    return make_mesh(MeshConfig(fsdp=1, ring=size), jax.devices()[:size])


def out_and_grads(fn, q, k, v, ct):
    """fn(q, k, v) and the gradients of <fn(q, k, v), ct> wrt q, k, v, in one jit."""

    @jax.jit
    def run(q, k, v, ct):
        out, vjp = jax.vjp(fn, q, k, v)
        return out, vjp(ct)

    return run(q, k, v, ct)


@functools.cache
def dense(name, segment_frames):
    mask, window, sink = MASKS[name]
    fn = functools.partial(
        attention, tokens_per_frame=T, segment_frames=segment_frames, mask=mask, window=window, sink_frames=sink
    )
    return out_and_grads(fn, *inputs())


def assert_close(got, want):
    (out, grads), (out_ref, grads_ref) = got, want
    assert float(jnp.max(jnp.abs(out - out_ref))) <= 1e-5
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert float(jnp.max(jnp.abs(g - g_ref)) / jnp.max(jnp.abs(g_ref))) <= 1e-4


@pytest.mark.parametrize("name", MASKS)
@pytest.mark.parametrize(("size", "segment_frames", "block_size"), RINGS)
def test_ring_equals_dense(name, size, segment_frames, block_size):
    mask, window, sink = MASKS[name]
    fn = functools.partial(
        ring.ring_attention,
        mesh=ring_mesh(size),
        tokens_per_frame=T,
        segment_frames=segment_frames,
        mask=mask,
        window=window,
        sink_frames=sink,
        block_size=block_size,
    )
    assert_close(out_and_grads(fn, *inputs()), dense(name, segment_frames))


@pytest.mark.parametrize("name", ["full", "causal"])
@pytest.mark.parametrize(("size", "segment_frames", "block_size"), [(4, 2, 5), (8, 1, 512)])
def test_ring_pads_frames_it_cannot_split(name, size, segment_frames, block_size):
    """13 frames (prime) are padded at the end to 16: padded keys must stay hidden under 'full' too, and with
    segment_frames=2 the last segment is a partial one, as in dense attention."""
    mask, window, sink = MASKS[name]
    kw = dict(tokens_per_frame=T, segment_frames=segment_frames, mask=mask, window=window, sink_frames=sink)
    fn = functools.partial(ring.ring_attention, mesh=ring_mesh(size), block_size=block_size, **kw)
    args = inputs(frames=13)
    assert_close(out_and_grads(fn, *args), out_and_grads(functools.partial(attention, **kw), *args))


@pytest.mark.parametrize("name", MASKS)
@pytest.mark.parametrize("block_size", [5, 512])
def test_blockwise_equals_dense(name, block_size):
    mask, window, sink = MASKS[name]
    fn = functools.partial(
        ring.blockwise_attention,
        tokens_per_frame=T,
        segment_frames=2,
        mask=mask,
        window=window,
        sink_frames=sink,
        block_size=block_size,
    )
    assert_close(out_and_grads(fn, *inputs()), dense(name, 2))


def test_attention_entry_point_with_batch_and_heads_sharded():
    mesh = make_mesh(MeshConfig(data=2, fsdp=1, ring=2, tensor=2))
    q, k, v, ct = inputs(b=2, n=2)
    kw = dict(tokens_per_frame=T, mask="causal", sink_frames=1)
    got = out_and_grads(functools.partial(attention, impl="ring", mesh=mesh, **kw), q, k, v, ct)
    blockwise = out_and_grads(functools.partial(attention, impl="blockwise", **kw), q, k, v, ct)
    want = out_and_grads(functools.partial(attention, **kw), q, k, v, ct)
    assert_close(got, want)
    assert_close(blockwise, want)


def work(size, mask, zigzag=None, block_size=512):
    """Per-device score entries computed, and the output (checked against dense by the caller)."""
    fn = functools.partial(
        ring.ring_attention,
        mesh=ring_mesh(size),
        tokens_per_frame=T,
        mask=mask,
        window=2,
        zigzag=zigzag,
        block_size=block_size,
        with_work=True,
    )
    q, k, v, _ = inputs()
    out, per_device = jax.jit(fn)(q, k, v)
    want = attention(q, k, v, tokens_per_frame=T, mask=mask, window=2)
    assert float(jnp.max(jnp.abs(out - want))) <= 1e-5
    return np.asarray(per_device)


@pytest.mark.parametrize(("size", "block_size"), [(4, 512), (8, 5)])
def test_masked_tile_pairs_are_skipped_and_zigzag_balances_them(size, block_size):
    L = F * T
    full = work(size, "full", block_size=block_size)
    np.testing.assert_array_equal(full, L * L // size)  # the counter counts every score entry once
    causal = work(size, "causal", block_size=block_size)
    # Causal needs L(L+T)/2 of L² entries; whole tiles on the diagonal add a little.
    assert 0.4 <= causal.sum() / full.sum() <= 0.65
    assert len(set(causal)) == 1  # zigzag: every device does the same work
    contiguous = work(size, "causal", zigzag=False, block_size=block_size)
    assert contiguous.max() >= 4 * contiguous.min()  # the last device computes every step, the first one once
    window = work(size, "window", block_size=block_size)
    assert window.sum() < causal.sum()


def test_ring_errors():
    q = jnp.zeros((1, 12 * T, 2, K))
    with pytest.raises(WanjaxError, match=r"impl='ring' needs a mesh"):
        attention(q, q, q, tokens_per_frame=T, impl="ring")
    with pytest.raises(WanjaxError, match=r"attention heads=2 is not divisible by the mesh axes tensor = 8"):
        attention(q, q, q, tokens_per_frame=T, impl="ring", mesh=make_mesh(MeshConfig(fsdp=1, tensor=8)))
    with pytest.raises(WanjaxError, match=r"impl='fast' is not one of dense, flash, sdpa, blockwise, ring"):
        attention(q, q, q, tokens_per_frame=T, impl="fast")
    with pytest.raises(WanjaxError, match=r"impl='flash' takes mask='full' only, not 'causal': use impl='blockwise'"):
        attention(q, q, q, tokens_per_frame=T, impl="flash", mask="causal")


@pytest.mark.parametrize(("name", "size"), [("causal+sink", 2), ("window2", 1)])
def test_pallas_kernel_equals_dense(name, size):
    """The Pallas TPU kernels (interpret mode here), in the ring and on one device."""
    mask, window, sink = MASKS[name]
    kw = dict(tokens_per_frame=T, segment_frames=2, mask=mask, window=window, sink_frames=sink)
    args = inputs(b=1, n=2, frames=8)
    if size == 1:
        fn = functools.partial(ring.blockwise_attention, kernel="pallas", block_size=10, **kw)
    else:
        fn = functools.partial(ring.ring_attention, mesh=ring_mesh(size), kernel="pallas", block_size=10, **kw)
    assert_close(out_and_grads(fn, *args), out_and_grads(functools.partial(attention, **kw), *args))
