"""Train state: parameters (fp32 master copy), EMA, optimizer state, step, RNG; and their shardings."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from wanjax.config import TrainConfig
from wanjax.parallel.partition import shardings


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 []
    params: nnx.State
    ema: nnx.State
    opt_state: optax.OptState
    rng: jax.Array  # uint32 [2] raw key data, so it checkpoints as a plain array


def learning_rate(tcfg: TrainConfig) -> optax.Schedule:
    """Linear warmup, then cosine decay to 0 over the remaining steps (or constant)."""
    warmup = max(tcfg.warmup_steps, 0)
    if tcfg.lr_schedule == "constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, tcfg.lr, warmup), optax.constant_schedule(tcfg.lr)], [warmup]
        )
    return optax.warmup_cosine_decay_schedule(0.0, tcfg.lr, warmup, max(tcfg.steps, warmup + 1), 0.0)


def optimizer(tcfg: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping + AdamW; MultiSteps accumulates `grad_accum` micro-batches per update."""
    tx = optax.chain(
        optax.clip_by_global_norm(tcfg.grad_clip),
        optax.adamw(learning_rate(tcfg), b2=tcfg.adam_b2, weight_decay=tcfg.weight_decay),
    )
    return optax.MultiSteps(tx, tcfg.grad_accum) if tcfg.grad_accum > 1 else tx


def init_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> tuple[nnx.GraphDef, TrainState]:
    """Split `model` into (graphdef, TrainState). The EMA starts as a copy of the parameters."""
    graphdef, params = nnx.split(model)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    ema = jax.tree.map(jnp.copy, params)
    rng = jax.random.key_data(jax.random.key(seed))
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, ema, tx.init(params), rng)


def state_shardings(state: TrainState, mesh: Mesh) -> TrainState:
    """Params, EMA and optimizer moments by logical axes (FSDP/tensor); step and RNG replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    return TrainState(
        replicated, shardings(state.params, mesh), shardings(state.ema, mesh), shardings(state.opt_state, mesh),
        replicated,
    )  # fmt: skip
