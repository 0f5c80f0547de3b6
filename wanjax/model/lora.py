"""Low-rank adapters (LoRA, Hu et al. 2021) on the DiT's linear layers: y = x W + b + (alpha / r) x A B.

    paths = add_lora(dit, rank=16, alpha=16, targets=TrainConfig().lora_targets, rngs=nnx.Rngs(0))   # train A, B only
    merge_lora(dit)                                   # fold every adapter into its kernel: a plain WanDiT again

A [in, r] starts as PEFT's (Kaiming-uniform), B [r, out] at zero, so a model with fresh adapters computes exactly
what it computed without them. An adapted layer keeps its kernel and bias under the same paths
(`blocks/attn1/to_q/kernel`), so checkpoints, sharding rules and `train.trainable` read it as before; the adapter
adds `.../lora_a` and `.../lora_b`. Scanned blocks stack them over the layer axis like every block parameter:
A [layers, in, r], B [layers, r, out].
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.errors import WanjaxError


def lora_delta(x: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """scale · x A B for x [..., in], a [in, r], b [r, out] -> [..., out] (computed in x's dtype)."""
    return scale * ((x @ a.astype(x.dtype)) @ b.astype(x.dtype))


def merged_kernel(kernel: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
    """kernel [..., in, out] + scale · A B in fp32, cast to the kernel's dtype; a [..., in, r], b [..., r, out]."""
    delta = jnp.einsum("...ir,...ro->...io", a.astype(jnp.float32), b.astype(jnp.float32))
    return (kernel.astype(jnp.float32) + scale * delta).astype(kernel.dtype)


class LoRALinear(nnx.Linear):
    """An nnx.Linear with an adapter beside its kernel (same kernel / bias paths; lora_a, lora_b added)."""

    def __init__(self, base: nnx.Linear, rank: int, alpha: float, rngs: nnx.Rngs):
        # Copy the base layer's attributes (kernel, bias, dtypes, ...) rather than re-create them.
        vars(self).update(vars(base))
        kernel = base.kernel.get_value()
        lead, d_in, d_out = kernel.shape[:-2], kernel.shape[-2], kernel.shape[-1]
        # The adapter's wide dim is sharded like an embedding (over fsdp) whatever the kernel's: named `heads` or
        # `mlp` it would map to `tensor` only, and an FSDP pod would hold every adapter whole (3.2 GB per device
        # for Wan2.1-14B at rank 64, `wanjax.bench.memory`). A stacked layer axis is implied, as for the kernel.
        axes = None if base.kernel.get_metadata().get("logical_axes") is None else ("embed", "embed")
        # PEFT's init: Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)); B zero.
        bound = 1.0 / d_in**0.5
        a = jax.random.uniform(rngs.params(), (*lead, d_in, rank), jnp.float32, -bound, bound)
        self.lora_a = nnx.Param(a, **({} if axes is None else {"logical_axes": (axes[0], None)}))
        b = jnp.zeros((*lead, rank, d_out), jnp.float32)
        self.lora_b = nnx.Param(b, **({} if axes is None else {"logical_axes": (None, axes[1])}))
        self.lora_scale = alpha / rank

    def __call__(self, x: jax.Array) -> jax.Array:
        return super().__call__(x) + lora_delta(x, self.lora_a[...], self.lora_b[...], self.lora_scale).astype(
            self.dtype or x.dtype
        )


def _linears(model: nnx.Module, cls: type) -> list[tuple[str, nnx.Module, str]]:
    """(path, parent, attribute) of every `cls` layer under `model`, path '/'-joined like parameter paths."""
    found = []
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            for name, child in vars(node).items():
                if isinstance(child, cls):
                    found.append(("/".join(map(str, (*path, name))), node, name))
    return sorted({p: (p, n, a) for p, n, a in found}.values())


def add_lora(model: nnx.Module, rank: int, alpha: float | None, targets: str, rngs: nnx.Rngs) -> list[str]:
    """Give every nnx.Linear whose path `targets` (a regex) is found in an adapter of `rank`; scale
    alpha / rank (alpha None: rank, scale 1). Returns the adapted paths."""
    pattern = re.compile(targets)
    layers = _linears(model, nnx.Linear)
    chosen = [(p, parent, name) for p, parent, name in layers if pattern.search(p)]
    if not chosen:
        examples = ", ".join(p for p, _, _ in layers[:6])
        raise WanjaxError(f"train.lora_targets={targets!r} matches no linear layer; layer paths look like {examples}")
    for _, parent, name in chosen:
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, rank if alpha is None else alpha, rngs))
    return [p for p, _, _ in chosen]


def merge_lora(model: nnx.Module) -> nnx.Module:
    """Fold every adapter into its kernel, turning each LoRALinear back into a plain nnx.Linear (in place)."""
    for _, parent, name in _linears(model, LoRALinear):
        layer = getattr(parent, name)
        kernel = merged_kernel(layer.kernel[...], layer.lora_a[...], layer.lora_b[...], layer.lora_scale)
        plain = object.__new__(nnx.Linear)
        vars(plain).update({k: v for k, v in vars(layer).items() if k not in ("lora_a", "lora_b", "lora_scale")})
        plain.kernel = nnx.Param(kernel, **layer.kernel.get_metadata())
        setattr(parent, name, plain)
    return model


def adapters(model: nnx.Module) -> dict[str, tuple[jax.Array, jax.Array, float]]:
    """{layer path: (A [..., in, r], B [..., r, out], scale)} of every adapter in `model`."""
    return {p: (getattr(n, a).lora_a[...], getattr(n, a).lora_b[...], getattr(n, a).lora_scale)
            for p, n, a in _linears(model, LoRALinear)}  # fmt: skip
