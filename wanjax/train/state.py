"""Train state: trained parameters (fp32 master copy), their EMA and optimizer state, step, RNG, the frozen
parameters; and their shardings."""

from __future__ import annotations

import re
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from wanjax.config import TrainConfig
from wanjax.errors import WanjaxError
from wanjax.parallel.partition import shardings


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 []
    params: nnx.State
    ema: nnx.State
    opt_state: optax.OptState
    rng: jax.Array  # uint32 [2] raw key data, so it checkpoints as a plain array
    # Parameters that do not train (train.trainable, LoRA), in their own dtype. Checkpoints leave them out: every
    # start rebuilds them from train.init or the seed (`saved`).
    frozen: nnx.State

    def saved(self) -> TrainState:
        """What a checkpoint holds: everything but the frozen parameters."""
        return self.replace(frozen=nnx.State({}))


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


def trainable(tcfg: TrainConfig) -> Callable[[tuple, nnx.Variable], bool]:
    """The nnx filter of the parameters that train: train.trainable searched in each '/'-joined path; without it
    every parameter, or with LoRA (train.lora_rank) the adapters only. With both, the adapters and the matches."""
    pattern = None if tcfg.trainable is None else re.compile(tcfg.trainable)
    lora = tcfg.lora_rank > 0

    def keep(path: tuple, variable: nnx.Variable) -> bool:
        name = "/".join(map(str, path))
        if lora and path[-1] in ("lora_a", "lora_b"):
            return True
        return (not lora) if pattern is None else bool(pattern.search(name))

    return keep


def init_state(
    model: nnx.Module, tx: optax.GradientTransformation, seed: int, train: Callable | None = None
) -> tuple[nnx.GraphDef, TrainState]:
    """Split `model` into (graphdef, TrainState): the parameters the filter `train` selects (default: all) in fp32
    with an EMA (starting as their copy) and optimizer state; the rest frozen as they are."""
    graphdef, params, frozen = nnx.split(model, nnx.All(nnx.Param, train or (lambda path, v: True)), ...)
    if not jax.tree.leaves(params):
        raise WanjaxError(
            "train.trainable matches no parameter: nothing would train; paths look like "
            + ", ".join("/".join(map(str, p)) for p, _ in nnx.to_flat_state(frozen)[:4])
        )
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    ema = jax.tree.map(jnp.copy, params)
    rng = jax.random.key_data(jax.random.key(seed))
    return graphdef, TrainState(jnp.zeros((), jnp.int32), params, ema, tx.init(params), rng, frozen)


def state_shardings(state: TrainState, mesh: Mesh) -> TrainState:
    """Params, EMA, optimizer moments and frozen params by logical axes (FSDP/tensor); step and RNG replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    return TrainState(
        replicated, shardings(state.params, mesh), shardings(state.ema, mesh), shardings(state.opt_state, mesh),
        replicated, shardings(state.frozen, mesh),
    )  # fmt: skip
