"""UniPC in the one sampler loop: parity with diffusers' UniPCMultistepScheduler (as Wan runs it), a convergence
gain over Euler, per-frame (pyramid) schedules, determinism. All fp32 on the JAX side."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from diffusers import UniPCMultistepScheduler

from wanjax.diffusion.flow import sampling_sigmas
from wanjax.diffusion.samplers import sample

SHAPE = (2, 3, 4, 5, 2)  # B, F, H, W, C


def _field_params(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.uniform(0.5, 2.0, shape)


def _velocity(params, x, sigma, step):
    """Deterministic, nonlinear in x, elementwise (frames independent), depends on each frame's sigma."""
    e, a = params
    s = sigma[None, :, None, None, None]
    return e - jnp.tanh(a * x) * (1 + s) + 0.3 * s * x


def _unipc(params, noise, sigmas, **kw):
    params = tuple(jnp.asarray(p, jnp.float32) for p in params)
    return np.asarray(sample(_velocity, params, jnp.asarray(noise, jnp.float32), sigmas, progress=False, **kw))


@pytest.mark.parametrize("steps, shift", [(10, 3.0), (25, 5.0), (3, 1.0)])
def test_unipc_matches_diffusers(steps, shift):
    e, a = _field_params(SHAPE)
    noise = np.random.default_rng(1).standard_normal(SHAPE)
    sched = UniPCMultistepScheduler(
        num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift,
        solver_order=2,
    )  # fmt: skip
    sched.set_timesteps(steps)
    # float32 [steps + 1]: linspace(1, 1/1000, steps + 1)[:-1] shifted, its first (1) lowered to 1 - 1e-6, then a
    # last sigma of exactly 0 appended
    sigmas = sched.sigmas.numpy()
    assert sigmas[0] == np.float32(1 - 1e-6) and sigmas[-1] == 0.0 and len(sigmas) == steps + 1
    # the reference in float64: the same float32 sigma values, float64 arithmetic (coefficients included)
    sched.set_begin_index(0)
    sched.sigmas = sched.sigmas.double()
    x, et, at = (torch.tensor(u, dtype=torch.float64) for u in (noise, e, a))
    for i, t in enumerate(sched.timesteps):
        s = sched.sigmas[i]
        x = sched.step(et - torch.tanh(at * x) * (1 + s) + 0.3 * s * x, t, x).prev_sample
    ref = x.numpy()

    out = _unipc((e, a), noise, np.repeat(sigmas[:, None], SHAPE[1], axis=1), solver="unipc")
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert rel <= 1e-4, rel  # measured 1e-7 .. 3e-7
    assert np.abs(_unipc((e, a), noise, np.repeat(sigmas[:, None], SHAPE[1], axis=1)) - ref).max() > 1e-3  # != euler


def test_unipc_converges_faster_than_euler():
    """Gaussian data x0 ~ N(mu, tau^2) per element: the probability-flow ODE has the exact solution
    x(sigma) = (1 - sigma) mu + sd(sigma) z, sd^2 = (1 - sigma)^2 tau^2 + sigma^2, from x(1) = z."""
    rng = np.random.default_rng(2)
    mu, tau = rng.standard_normal(SHAPE), rng.uniform(0.5, 2.0, SHAPE)
    z = rng.standard_normal(SHAPE)
    params = tuple(jnp.asarray(p, jnp.float32) for p in (mu, tau))

    def velocity(params, x, sigma, step):
        mu, tau = params
        s = sigma[None, :, None, None, None]
        var = (1 - s) ** 2 * tau**2 + s**2
        return -mu + (s - (1 - s) * tau**2) / var * (x - (1 - s) * mu)

    def err(solver, steps, shift=1.0):
        sigmas = np.repeat(sampling_sigmas(steps, shift)[:, None], SHAPE[1], axis=1)  # starts at exactly 1.0
        out = sample(velocity, params, jnp.asarray(z, jnp.float32), sigmas, progress=False, solver=solver)
        return np.abs(np.asarray(out) - (mu + tau * z)).max()

    euler, unipc = err("euler", 10), err("unipc", 10)
    assert euler / unipc > 10, (euler, unipc)  # measured 0.726 / 0.0406 = 17.9x
    # the orders: doubling the steps divides Euler's error by ~2 (1.94) and UniPC's by ~4 (3.79)
    assert euler / err("euler", 20) < 2.2 and unipc / err("unipc", 20) > 3.2
    # a shifted schedule (few steps left near sigma 0, where the last one is first order) gains less
    assert err("euler", 10, 3.0) / err("unipc", 10, 3.0) > 3  # measured 0.692 / 0.159 = 4.4x


def test_pyramid_frames_match_their_own_synchronous_run():
    """Frames 0-1 run the schedule, frames 2-3 the same one `lag` steps later (waiting at sigma 1, frames 0-1 then
    finished at 0), frame 4 is clean throughout: each frame ends where UniPC on it alone would."""
    steps, lag = 8, 3
    base = sampling_sigmas(steps, 5.0).astype(np.float32)
    early = np.concatenate([base, np.zeros(lag, np.float32)])
    late = np.concatenate([np.ones(lag, np.float32), base])
    sigmas = np.stack([early, early, late, late, np.zeros_like(early)], axis=1)  # [steps + lag + 1, 5]
    shape = (2, 5, 4, 5, 2)
    params = _field_params(shape, seed=3)
    noise = np.random.default_rng(4).standard_normal(shape).astype(np.float32)

    out = _unipc(params, noise, sigmas, solver="unipc")
    np.testing.assert_array_equal(out[:, 4], noise[:, 4])  # bitwise: a sigma-0 frame is never touched
    for f in range(4):
        alone = _unipc(tuple(p[:, f : f + 1] for p in params), noise[:, f : f + 1], base[:, None], solver="unipc")
        np.testing.assert_allclose(out[:, f : f + 1], alone, rtol=0, atol=1e-6)  # measured: bitwise equal
    assert np.abs(out[:, :4] - noise[:, :4]).min() > 0  # every other frame did move


def test_unipc_is_deterministic_and_compiles_once_across_calls():
    params = tuple(jnp.asarray(p, jnp.float32) for p in _field_params(SHAPE))
    noise = jnp.asarray(np.random.default_rng(5).standard_normal(SHAPE), jnp.float32)
    sigmas = np.repeat(sampling_sigmas(6, 5.0)[:, None], SHAPE[1], axis=1)
    traces = []

    def velocity(params, x, sigma, step):
        traces.append(step)  # runs only while tracing
        return _velocity(params, x, sigma, step)

    a = np.asarray(sample(velocity, params, noise, sigmas, progress=False, solver="unipc"))
    assert len(traces) == 1  # not one per step
    b = np.asarray(sample(velocity, params, noise, sigmas, progress=False, solver="unipc"))
    np.testing.assert_array_equal(a, b)
    assert len(traces) == 1  # a second call with the same velocity and shapes reuses the compiled step


def test_unknown_solver_is_an_error():
    with pytest.raises(ValueError, match="'rk4' is not one of euler, unipc"):
        sample(_velocity, None, jnp.zeros(SHAPE), np.ones((3, SHAPE[1])), progress=False, solver="rk4")
