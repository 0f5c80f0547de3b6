"""Place parameters and constrain activations by logical axis names (rules in parallel/mesh.py).

Parameters carry `logical_axes` metadata (model/layers.py). A scanned block parameter has one more leading
dim than its names: that dim is the `layers` axis.
"""

from __future__ import annotations

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from wanjax.parallel.mesh import logical_to_spec


def _spec(var: nnx.Variable) -> PartitionSpec:
    names = tuple(var.get_metadata().get("logical_axes") or ())
    ndim = var.get_value().ndim
    if len(names) == ndim - 1:
        names = ("layers", *names)
    if len(names) != ndim:
        names = (None,) * ndim  # unannotated (e.g. buffers): replicated
    return logical_to_spec(names)


def shardings(tree, mesh: Mesh):
    """The same pytree as `tree` with NamedShardings as values: nnx Variables (params, and optimizer moments,
    which keep their params' metadata) by their logical axes; any other array (step counts, RNG) replicated.
    """

    def one(x):
        if isinstance(x, nnx.Variable):
            return x.replace(NamedSharding(mesh, _spec(x)))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))


def shard_module(module: nnx.Module, mesh: Mesh) -> nnx.Module:
    """Move a module's variables onto the mesh by their logical axes (in place); returns the module."""
    state = nnx.state(module)
    nnx.update(module, jax.device_put(state, shardings(state, mesh)))
    return module


def place(module: nnx.Module, memory_kind: str) -> nnx.Module:
    """Move a module's arrays, in place and keeping their sharding, to memory `memory_kind` ('device' or
    'pinned_host': host memory the devices reach directly), freeing the buffers they leave."""
    state = nnx.state(module)
    leaves = [a for a in jax.tree.leaves(state) if a.sharding.memory_kind != memory_kind]
    moved = jax.tree.map(
        lambda a: (
            a if a.sharding.memory_kind == memory_kind else jax.device_put(a, a.sharding.with_memory_kind(memory_kind))
        ),
        state,
    )
    nnx.update(module, jax.block_until_ready(moved))
    for a in leaves:
        a.delete()
    return module


def constrain(x: jax.Array, names: tuple[str | None, ...], mesh: Mesh | None) -> jax.Array:
    """with_sharding_constraint by logical names; a no-op without a mesh (single device)."""
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_spec(names)))
