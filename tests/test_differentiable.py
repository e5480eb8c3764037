"""Differentiable sampling (issue 3): gradients through `jdiff.solve` and no recompilation.

In float64 on an exact Gaussian-mixture model (VP, ε-prediction):

* gradients of a scalar function of the final sample with respect to x_T, the model's params (the
  mixture means and weights) and the time-grid values match central finite differences
  (relative error < 1e-5) for Euler, Heun, DDIM and, where they exist in the tree,
  DPM-Solver++(2M) and UniPC;
* `RecursiveCheckpointAdjoint` and `DirectAdjoint` give the same gradients (to ~1e-10);
* new values of x_T, params or the grid reuse the compiled program (an XLA compile counter on
  `jax.monitoring`; a new grid length does compile, so the guard can fail);
* `jdiff.timesteps_optimize.optimize` learns a grid that beats its initial grid on held-out noise.
"""

from __future__ import annotations

import importlib

import diffrax
import equinox as eqx
import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest

import jdiff
from jdiff import timesteps
from jdiff.analytic import GaussianMixture
from jdiff.solvers import DDIM, Euler, Heun
from jdiff.timesteps_optimize import grid_from_logits, optimize


def _optional(module: str, cls: str, **kwargs):
    """The solver `jdiff.solvers.<module>.<cls>(**kwargs)` if this checkout has it, else None."""
    try:
        return getattr(importlib.import_module(f"jdiff.solvers.{module}"), cls)(**kwargs)
    except (ImportError, AttributeError):
        return None


SOLVERS = {"Euler": Euler(), "Heun": Heun(), "DDIM": DDIM()}
for _name, _solver in (
    ("DPMSolverPP-2M", _optional("dpm_solver_pp", "DPMSolverPP", order=2)),
    ("UniPC-2", _optional("unipc", "UniPC", order=2)),
):
    if _solver is not None:
        SOLVERS[_name] = _solver

N_STEPS = 4
FAST = ("DDIM",)  # the others compile their own gradient programs: marked slow
DIRECT = ("DDIM", "Heun", "DPMSolverPP-2M")  # also checked against DirectAdjoint


def _mixture(means):
    covs = jnp.asarray([[[0.2, 0.05], [0.05, 0.1]], [[0.1, -0.03], [-0.03, 0.3]]])
    return GaussianMixture(jnp.asarray([0.4, 0.6]), means, covs)


def _setup():
    process = jdiff.process.VP()
    means = jnp.asarray([[-1.0, 0.5], [1.0, -0.3]])
    x_T = jax.random.normal(jax.random.key(0), (3, 2), jnp.float64)
    ts = timesteps.log_snr(process, N_STEPS)
    w = jnp.asarray([[0.3, -1.2], [0.7, 0.4], [-0.5, 1.1]])
    return process, means, x_T, ts, w


def _with_means(model, means):
    """The exact model with other mixture means (covariances, hence eigenvectors, unchanged)."""
    return eqx.tree_at(lambda m: m.params[0].means, model, means)


def _objective(solver, adjoint):
    """F(x_T, means, ts) = Σ w · sin(x_0): a smooth scalar of the final sample."""
    process, means, *_ = _setup()
    base = _mixture(means).model(process, "eps")

    def f(x_T, means, ts, w):
        out = jdiff.solve(_with_means(base, means), solver, x_T, ts, adjoint=adjoint).samples
        return jnp.sum(w * jnp.sin(out))

    return f


_CACHE: dict = {}


def _fns(name):
    """Jitted value and gradients (both adjoints) of the objective for one solver (cached)."""
    if name not in _CACHE:
        solver = SOLVERS[name]
        f = _objective(solver, diffrax.RecursiveCheckpointAdjoint())
        g_direct = _objective(solver, diffrax.DirectAdjoint())
        _CACHE[name] = (
            jax.jit(f),
            jax.jit(jax.grad(f, argnums=(0, 1, 2))),
            jax.jit(jax.grad(g_direct, argnums=(0, 1, 2))) if name in DIRECT else None,
        )
    return _CACHE[name]


def _central(f, args, i, direction, h):
    plus = list(args)
    minus = list(args)
    plus[i] = args[i] + h * direction
    minus[i] = args[i] - h * direction
    return (float(f(*plus)) - float(f(*minus))) / (2 * h)


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in SOLVERS]
)
def test_gradients_match_finite_differences(x64, name):
    process, means, x_T, ts, w = _setup()
    f, grad_rc, grad_direct = _fns(name)
    args = (x_T, means, ts, w)
    g_x, g_m, g_t = grad_rc(*args)
    for g in (g_x, g_m, g_t):
        assert np.all(np.isfinite(np.asarray(g)))
    assert float(jnp.max(jnp.abs(g_t))) > 1e-4  # the grid really influences the sample

    rng = np.random.default_rng(1)
    checks = []
    for i, g, h in ((0, g_x, 1e-5), (1, g_m, 1e-5)):
        for _ in range(2):  # directional derivatives along random directions
            d = jnp.asarray(rng.normal(size=args[i].shape))
            checks.append((float(jnp.sum(g * d)), _central(f, args, i, d, h)))
    for k in range(ts.shape[0]):  # every grid value, endpoints included
        e = jnp.zeros_like(ts).at[k].set(1.0)
        checks.append((float(g_t[k]), _central(f, args, 2, e, 1e-6)))
    for analytic, fd in checks:
        assert abs(analytic - fd) <= 1e-5 * max(abs(fd), 1e-2), (name, analytic, fd)

    # two diffrax adjoints (memory strategies) agree
    if grad_direct is None:
        return
    for a, b in zip((g_x, g_m, g_t), grad_direct(*args), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


class _CompileCounter:
    """Counts XLA backend compilations while active (jax.monitoring event listener)."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count = 0
        self.active = False

    def __call__(self, event, duration, **kwargs):
        if self.active and event == self.EVENT:
            self.count += 1

    def __enter__(self):
        self.count = 0
        self.active = True
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        self.active = False
        jax.monitoring.unregister_event_duration_listener(self)


def test_new_values_do_not_recompile(x64):
    process, means, x_T, ts, _ = _setup()
    solver = SOLVERS["DDIM"]

    base = _mixture(means).model(process, "eps")

    def run(means, x_T, ts):
        return jdiff.solve(_with_means(base, means), solver, x_T, ts).samples

    jax.block_until_ready(run(means, x_T, ts))  # compile once
    new_inputs = [
        (means + 0.1, x_T, ts),  # new params
        (means, x_T * 1.5 + 0.2, ts),  # new x_T
        (means, x_T, timesteps.karras(process, N_STEPS)),  # new grid values
        (means - 0.3, -x_T, timesteps.uniform(process, N_STEPS)),
    ]
    with _CompileCounter() as counter:
        outs = [jax.block_until_ready(run(*a)) for a in new_inputs]
    assert counter.count == 0, f"jdiff.solve recompiled {counter.count} time(s) for new values"
    assert not np.allclose(np.asarray(outs[0]), np.asarray(outs[1]))

    # a new grid length is a new program: the counter sees it (the guard can fail)
    with _CompileCounter() as counter:
        jax.block_until_ready(run(means, x_T, timesteps.log_snr(process, N_STEPS + 1)))
    assert counter.count >= 1


def test_grid_parameterisation_reproduces_initial_grid(x64):
    process = jdiff.process.VP()
    from jdiff.timesteps_optimize import _logits_from_grid

    build = eqx.filter_jit(grid_from_logits)
    for space, ts in (("lam", timesteps.karras(process, 6)), ("t", timesteps.uniform(process, 6))):
        logits = _logits_from_grid(process, ts, space)
        back = build(process, logits, ts[0], ts[-1], space)
        np.testing.assert_allclose(np.asarray(back), np.asarray(ts), rtol=1e-10, atol=1e-12)
        # arbitrary logits give a strictly decreasing grid with the same endpoints
        wild = build(process, 30.0 * jnp.sin(jnp.arange(6.0)), ts[0], ts[-1], space)
        assert np.all(np.diff(np.asarray(wild)) < 0)
        assert float(wild[0]) == float(ts[0]) and float(wild[-1]) == float(ts[-1])


@pytest.mark.slow
def test_optimize_beats_initial_grid_on_held_out_noise(x64):
    process, means, _, _, _ = _setup()
    model = _mixture(means).model(process, "eps")
    solver = DDIM()
    n = 5
    ts, info = optimize(
        model,
        solver,
        n,
        key=jax.random.key(3),
        batch=64,
        data_shape=(2,),
        init="log_snr",
        n_iters=60,
        learning_rate=0.05,
        return_info=True,
    )
    init = timesteps.log_snr(process, n)
    assert ts.shape == (n + 1,)
    assert float(ts[0]) == float(init[0]) and float(ts[-1]) == float(init[-1])
    assert np.all(np.diff(np.asarray(ts)) < 0)
    assert info.best_loss < 0.7 * info.init_loss, (info.init_loss, info.best_loss)

    x_test = jax.random.normal(jax.random.key(4), (128, 2), jnp.float64)
    ref = jdiff.solve(
        model, jdiff.solvers.Diffrax(diffrax.Dopri8(), rtol=1e-10, atol=1e-10), x_test, init
    ).samples

    def rmse(grid):
        out = jdiff.solve(model, solver, x_test, grid).samples
        return float(jnp.sqrt(jnp.mean((out - ref) ** 2)))

    assert rmse(ts) < 0.85 * rmse(init), (rmse(init), rmse(ts))

    with pytest.raises(ValueError, match="deterministic"):
        optimize(model, DDIM(eta=1.0), n, x_T=x_test)
