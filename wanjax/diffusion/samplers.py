"""One sampler loop for every schedule: a velocity function and a sigma matrix [steps + 1, F].

Row i holds each latent frame's sigma before step i (a synchronous schedule has equal columns); frames whose
sigma does not change in a step are left exactly as they are by the update. Solvers:
* euler: x += (sigma_next - sigma) v.
* unipc: UniPC (Zhao et al. 2023) as diffusers' UniPCMultistepScheduler runs Wan (flow_prediction, flow sigmas,
  solver_order=2, predict_x0, bh2, lower_order_final), per frame: a second-order predictor UniP and a corrector
  UniC that reuses the next step's model output, so still one model call per step. alpha = 1 - sigma,
  lambda = log(alpha / sigma), data prediction x0 = x - sigma v. Its coefficients depend only on the sigma
  matrix, so they are computed once on the host in float64 (`unipc_tables`); the jitted step only mixes arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

SOLVERS = ("euler", "unipc")

# (params, x [B, F, H, W, C], sigma [F], step index (traced int32)) -> v, same shape as x. Params are an
# argument, not a closure, so the jitted step does not bake a multi-GB model into its program as constants.
VelocityFn = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]


def guidance_weights(
    text: bool, motion: bool, scale_text: float, scale_motion: float
) -> list[tuple[bool, bool, float]]:
    """Classifier-free guidance with separate text and motion scales as a weighted sum of branches
    (use text, use motion, weight):

        v = v(∅, ∅) + g_t (v(text, ∅) - v(∅, ∅)) + g_m (v(text, motion) - v(text, ∅))

    An absent condition counts as scale 1 (its branches coincide and are merged); zero-weight branches are left
    out, so with both scales 1 this is one model call."""
    g_t = scale_text if text else 1.0
    g_m = scale_motion if motion else 1.0
    weights: dict[tuple[bool, bool], float] = {}
    for use_text, use_motion, w in ((text, motion, g_m), (text, False, g_t - g_m), (False, False, 1.0 - g_t)):
        weights[use_text, use_motion] = weights.get((use_text, use_motion), 0.0) + w
    return [(t, m, w) for (t, m), w in weights.items() if w != 0.0]


def euler_update(x: jax.Array, v: jax.Array, sigma: jax.Array, sigma_next: jax.Array) -> jax.Array:
    """One Euler step of dx/dsigma = v per latent frame. x, v [B, F, H, W, C]; sigma, sigma_next [F]."""
    ds = (sigma_next - sigma).astype(x.dtype)[None, :, None, None, None]
    return x + ds * v


def _unipc_terms(s: np.ndarray, t: np.ndarray, s_prev: np.ndarray) -> tuple[np.ndarray, ...]:
    """Terms of a step sigma s -> t with the previous model output at s_prev (float64 arrays of one shape):
    x scale t / s, alpha_t B(h) with h = lambda_t - lambda_s and B(h) = expm1(-h) (bh2; also h phi_1 of the data
    prediction), history ratio r = (lambda_prev - lambda_s) / h, and the order-2 corrector's (rho_prev, rho_now)
    solving [[1, 1], [r, 1]] rho = b. t = 0 (lambda = +inf) gives the limits: t / s = 0, alpha_t B(h) = -1."""
    lam_s, lam_t, lam_prev = (np.log1p(-u) - np.log(u) for u in (s, t, s_prev))
    hh = lam_s - lam_t  # -h
    bh = np.expm1(hh)
    r = (lam_prev - lam_s) / -hh
    k1 = bh / hh - 1  # the paper's recursion g_{k+1} = g_k / hh - 1 / k! from g_1 = expm1(hh); b_k = k! g_{k+1} / B
    b1, b2 = k1 / bh, 2 * (k1 / hh - 0.5) / bh
    rho_prev = (b1 - b2) / (1 - r)
    return t / s, (1 - t) * bh, r, rho_prev, b1 - rho_prev


def unipc_tables(sigmas: np.ndarray) -> dict[str, np.ndarray]:
    """Per-step, per-frame UniPC coefficients [steps, F] (float32) and masks (bool) for `unipc_update`.

    Step i moves frame f iff its sigma changes. Predictor order 2 needs the frame to have moved in step i - 1 too
    (else first order: no usable history, like diffusers' first step) and is first order on the frame's last move
    (lower_order_final; its target sigma 0 would make the history ratio 0). The corrector runs on a moving frame
    that also moved in step i - 1, with that step's predictor order."""
    s = np.asarray(sigmas, np.float64)
    moves = s[1:] != s[:-1]  # [steps, F]
    last = moves & (np.cumsum(moves[::-1], axis=0)[::-1] == 1)
    before = np.concatenate([np.zeros_like(moves[:1]), moves[:-1]])
    order = moves * (1 + (before & ~last & (s[1:] > 0)))
    c_order = np.where(moves, np.concatenate([np.zeros_like(order[:1]), order[:-1]]), 0)
    # sigma capped at float32(1 - 1e-6) as diffusers does, so lambda stays finite at pure noise; pad[i + 2] = s[i]
    # and the two padding rows never count as history
    pad = np.minimum(np.concatenate([s[:1], s[:1], s]), float(np.float32(1 - 1e-6)))
    with np.errstate(all="ignore"):
        px, pb, pr, _, _ = _unipc_terms(pad[2:-1], pad[3:], pad[1:-2])
        cx, cb, cr, rho_prev, rho_now = _unipc_terms(pad[1:-2], pad[2:-1], pad[:-3])
        second, c_second = order == 2, c_order == 2
        tables = {
            "px": px,  # x_next = px x + p_m m + p_d (m1 - m)
            "p_m": -pb,
            "p_d": np.where(second, -0.5 * pb / pr, 0.0),  # diffusers' fixed rho_p = 0.5 for order 2
            "cx": cx,  # x = cx x_prev + c_m m1 + c_d (m2 - m1) + c_t (m - m1)
            "c_m": -cb,
            "c_d": np.where(c_second, -cb * rho_prev / cr, 0.0),
            "c_t": -cb * np.where(c_second, rho_now, 0.5),  # rho = 0.5 for the first-order corrector
        }
    masks = {"move": moves, "correct": c_order > 0}
    tables = {k: np.where(masks["correct" if k[0] == "c" else "move"], v, 0.0) for k, v in tables.items()}
    if not all(np.isfinite(v).all() for v in tables.values()):
        raise ValueError("unipc: non-finite coefficients; every frame's sigmas must decrease within [0, 1]")
    return {k: v.astype(np.float32) for k, v in tables.items()} | masks


class UniPCState(NamedTuple):
    """UniPC's carried arrays, each [B, F, H, W, C]: the sample after the last predictor, the sample that predictor
    started from (after its corrector), and the data predictions x0 of the last two steps."""

    x: jax.Array
    x_prev: jax.Array
    m1: jax.Array
    m2: jax.Array

    @classmethod
    def start(cls, noise: jax.Array) -> UniPCState:
        zeros = jnp.zeros_like(noise)
        return cls(noise, zeros, zeros, zeros)


def unipc_update(state: UniPCState, v: jax.Array, sigma: jax.Array, row: dict[str, jax.Array]) -> UniPCState:
    """One UniPC step: correct the current sample with the new model output v [B, F, H, W, C] (at sigma [F]),
    then predict the next one. row: one step of `unipc_tables`, each [F]; unmoved frames stay bitwise equal."""
    x = state.x

    def c(name):
        return row[name].astype(x.dtype)[None, :, None, None, None]

    def mask(name):
        return row[name][None, :, None, None, None]

    m = x - sigma.astype(x.dtype)[None, :, None, None, None] * v
    corrected = c("cx") * state.x_prev + c("c_m") * state.m1 + c("c_d") * (state.m2 - state.m1)
    x = jnp.where(mask("correct"), corrected + c("c_t") * (m - state.m1), x)
    x_next = jnp.where(mask("move"), c("px") * x + c("p_m") * m + c("p_d") * (state.m1 - m), x)
    return UniPCState(x_next, x, m, state.m1)


def _euler_step(state: tuple[jax.Array], v: jax.Array, sigma: jax.Array, row: dict) -> tuple[jax.Array]:
    return (euler_update(state[0], v, sigma, row["s_next"]),)


UPDATES = {"euler": _euler_step, "unipc": unipc_update}


@functools.lru_cache(maxsize=8)
def _jitted_step(velocity: Callable, solver: str) -> Callable:
    """One jitted sampler step per (velocity, solver), kept across calls: chained windows and repeated samples of
    the same shapes compile once."""
    update = UPDATES[solver]

    @jax.jit
    def step(params, state, carry, s, row, i):
        if carry is None:
            return update(state, velocity(params, state[0], s, i), s, row), None
        v, carry = velocity(params, state[0], s, i, carry)
        return update(state, v, s, row), carry

    return step


def sample(
    velocity: VelocityFn,
    params: Any,
    noise: jax.Array,
    sigmas: np.ndarray,
    progress: bool = True,
    solver: str = "euler",
    carry: Any = None,
    switch: tuple[int, VelocityFn, Callable[[], Any]] | None = None,
) -> jax.Array:
    """Integrate from `noise` [B, F, H, W, C] along `sigmas` [steps + 1, F] with `solver` (euler | unipc); one
    model call and one call of one jitted step per row. carry: state the velocity keeps between steps (the
    pyramid's K/V cache); then it is called velocity(params, x, sigma, i, carry) -> (v, carry). switch: (step k,
    velocity, params()): from step k on, another model (Wan2.2 A14B's low-noise expert), whose params are asked
    for when that step comes (so its weights can move to the devices then); the solver's history carries over, as
    in diffusers' pipelines."""
    sigmas = np.asarray(sigmas, np.float32)
    if sigmas.ndim != 2 or sigmas.shape[1] != noise.shape[1]:
        raise ValueError(f"sigmas {sigmas.shape} must be [steps + 1, F={noise.shape[1]}]")
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r} is not one of {', '.join(SOLVERS)}")
    if solver == "euler":
        tables, state = {"s_next": sigmas[1:]}, (noise,)
    else:
        tables, state = unipc_tables(sigmas), UniPCState.start(noise)
    step = _jitted_step(velocity, solver)
    for i in tqdm(range(len(sigmas) - 1), desc="sampling", disable=not progress, leave=False):
        if switch is not None and i == switch[0]:
            velocity, params = switch[1], switch[2]()
            step = _jitted_step(velocity, solver)
        row = {k: jnp.asarray(t[i]) for k, t in tables.items()}
        previous = state[0]
        state, carry = step(params, state, carry, jnp.asarray(sigmas[i]), row, jnp.int32(i))
        jax.block_until_ready(previous)  # one step queued ahead, no more: the bar shows finished steps
    return state[0]
