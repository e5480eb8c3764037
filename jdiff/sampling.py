"""Sampling drivers: `solve` (a `Solution` with NFE, trajectory, stats) and `sample` (samples only).

Both run one `diffrax.diffeqsolve` inside one `jit`: the whole trajectory is a single XLA program,
compiled once per (solver, grid length, shapes); new values of x_T, params or the grid reuse it.
Integration runs in $u = -t$ (see `jdiff.solvers.base`).

Validation (DESIGN §7): structural mistakes raise `ValueError` before tracing; a traced grid that
is not strictly decreasing or leaves the process's domain raises through `equinox.error_if`
(or comes back in `Solution.result` with `throw=False`).
"""

from __future__ import annotations

import warnings
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from jdiff.model import Model
from jdiff.solvers.adaptive import Diffrax
from jdiff.solvers.base import AbstractDiffusionSolver, ProbabilityFlowTerm
from jdiff.timesteps import validate

__all__ = ["Solution", "solve", "sample"]


class Solution(eqx.Module):
    """Result of `solve`.

    Attributes:
        samples: `[B, ...]` final states at `ts[-1]`.
        nfe: number of network evaluations (int32 scalar; guidance that calls the network twice
            counts twice).
        ts: `[N+1]` the grid.
        trajectory: `[N+1, B, ...]` states at every grid time if `save_trajectory`, else None.
        stats: diffrax's statistics (`num_steps`, `num_accepted_steps`, …).
        result: diffrax's `RESULTS` code (successful unless `throw=False` hid an error).
    """

    samples: Array
    nfe: Array
    ts: Array
    trajectory: Array | None
    stats: dict
    result: Any


def _check_inputs(model, solver, x_T, ts):
    if not isinstance(model, Model):
        raise ValueError(f"model must be a jdiff.Model; got {type(model).__name__}")
    if not isinstance(solver, AbstractDiffusionSolver | Diffrax):
        raise ValueError(
            "solver must be a jdiff solver (jdiff.solvers.*) or jdiff.solvers.Diffrax(...); "
            f"got {type(solver).__name__}"
        )
    if not hasattr(x_T, "shape") or jnp.ndim(x_T) < 1:
        raise ValueError("x_T must be an array [B, ...] with a leading batch axis")
    return validate(model.process, ts)


def _traced_grid_checks(process, ts):
    t_lo = process.t_min if process.t_zero is None else min(process.t_min, process.t_zero)
    tol = 1e-6 * max(1.0, abs(process.t_max))
    ts = eqx.error_if(ts, jnp.any(jnp.diff(ts) >= 0), "time grid must be strictly decreasing")
    ts = eqx.error_if(
        ts,
        jnp.any(ts < t_lo - tol) | jnp.any(ts > process.t_max + tol),
        "time grid leaves the process's domain [t_lo, t_max]",
    )
    return ts


BROWNIAN = ("fold_in", "tree")
_TREE_SALT = 0x5EED  # separates the tree's key stream from the per-step fold_in stream
_TREE_LEVELS = 16  # "tree" resolves the interval to 2^-16 of its length


def _check_brownian(brownian):
    if isinstance(brownian, diffrax.AbstractBrownianPath):
        return
    if not isinstance(brownian, str) or brownian not in BROWNIAN:
        raise ValueError(
            f"brownian must be one of {list(BROWNIAN)} or a diffrax.AbstractBrownianPath; "
            f"got {brownian!r}"
        )


def _brownian_path(brownian, key, x_T, ts):
    """The shared Brownian path of a solve in u = −t (None for per-step fold_in noise)."""
    if isinstance(brownian, diffrax.AbstractBrownianPath):
        return brownian
    if brownian == "fold_in" or key is None:
        return None
    u0, u1 = -ts[0], -ts[-1]
    return diffrax.VirtualBrownianTree(
        u0,
        u1,
        tol=(u1 - u0) * 2.0**-_TREE_LEVELS,
        shape=jax.ShapeDtypeStruct(x_T.shape, x_T.dtype),
        key=jax.random.fold_in(key, _TREE_SALT),
    )


@eqx.filter_jit
def _solve(model, solver, x_T, ts, key, cond, save_trajectory, adjoint, throw, brownian="fold_in"):
    ts = _traced_grid_checks(model.process, ts)
    us = -ts
    term = ProbabilityFlowTerm(
        model,
        cond,
        key,
        None if isinstance(solver, Diffrax) else ts,
        None if isinstance(solver, Diffrax) else _brownian_path(brownian, key, x_T, ts),
    )
    saveat = diffrax.SaveAt(
        ts=us if save_trajectory else None,
        t1=not save_trajectory,
        solver_state=isinstance(solver, AbstractDiffusionSolver),
    )
    if adjoint is None:
        adjoint = diffrax.RecursiveCheckpointAdjoint()
    if isinstance(solver, Diffrax):
        sol = diffrax.diffeqsolve(
            term,
            solver.solver,
            us[0],
            us[-1],
            dt0=None,
            y0=x_T,
            stepsize_controller=solver.controller(),
            saveat=saveat,
            adjoint=adjoint,
            max_steps=solver.max_steps,
            throw=throw,
        )
        nfe = solver.nfe(sol.stats["num_steps"])
        nfe = jnp.where(nfe < 0, nfe, nfe * model.nfe_per_call)
    else:
        n_steps = ts.shape[0] - 1
        with warnings.catch_warnings():
            # a term holding a Brownian path makes diffrax warn that a solver is not marked Itô
            # or Stratonovich; jdiff's SDE samplers converge to the Itô reverse SDE.
            warnings.filterwarnings("ignore", message=".*Itô or the Stratonovich")
            sol = diffrax.diffeqsolve(
                term,
                solver,
                us[0],
                us[-1],
                dt0=None,
                y0=x_T,
                stepsize_controller=diffrax.StepTo(ts=us),
                saveat=saveat,
                adjoint=adjoint,
                max_steps=n_steps,
                throw=throw,
            )
        nfe = sol.solver_state.nfe
    ys = sol.ys
    return Solution(
        samples=ys[-1],
        nfe=nfe,
        ts=ts,
        trajectory=ys if save_trajectory else None,
        stats=sol.stats,
        result=sol.result,
    )


def solve(
    model: Model,
    solver: AbstractDiffusionSolver | Diffrax,
    x_T: Array,
    ts: ArrayLike,
    *,
    key: PRNGKeyArray | None = None,
    cond: Any = None,
    save_trajectory: bool = False,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
    brownian: str | diffrax.AbstractBrownianPath = "fold_in",
) -> Solution:
    """Integrate from `x_T` at `ts[0]` down to `ts[-1]` with `solver`.

    Args:
        model: a `jdiff.Model` (network or analytic oracle, possibly guided).
        solver: a jdiff solver (e.g. `jdiff.solvers.DDIM()`), or `jdiff.solvers.Diffrax(...)`
            for an adaptive solve between `ts[0]` and `ts[-1]`.
        x_T: `[B, ...]` initial noise at time `ts[0]` (e.g. `process.prior_sample`).
        ts: `[N+1]` strictly decreasing times (`jdiff.timesteps`); may end at σ = 0.
        key: PRNG key, required by stochastic solvers; noise at step i is a pure function of
            `(key, i)`.
        cond: conditioning passed to the model (e.g. class labels `[B]`).
        save_trajectory: also return the states at every grid time.
        adjoint: a `diffrax.AbstractAdjoint` for gradients (default
            `diffrax.RecursiveCheckpointAdjoint()`).
        throw: raise on a failed solve / invalid traced grid (else report in `result`).
        brownian: the noise of stochastic solvers. `"fold_in"` (default, cheapest): step i
            draws `normal(fold_in(fold_in(key, i), index))`, a fresh path for every grid.
            `"tree"`: one `diffrax.VirtualBrownianTree` in u = −t over `[-ts[0], -ts[-1]]`
            (resolved to 2⁻¹⁶ of the interval) from `key`, so grids with the same end points
            are driven by the same Brownian motion (strong-convergence studies); SDE solvers
            (EulerMaruyama, DDIM η > 0, Ancestral, SDEDPMSolverPP) read their increments from
            it. Or any `diffrax.AbstractBrownianPath` in u = −t shaped like `x_T`. Noise that is
            not a Brownian increment (EDM churn, Langevin corrector) stays fold_in noise.

    Returns:
        A `Solution`; `solution.samples` is shaped like `x_T`.
    """
    ts = _check_inputs(model, solver, x_T, ts)
    _check_brownian(brownian)
    if getattr(solver, "stochastic", False) and key is None:
        raise ValueError(f"{type(solver).__name__} is stochastic: pass key=...")
    x_T = jnp.asarray(x_T)
    ts = ts.astype(x_T.dtype) if jnp.issubdtype(x_T.dtype, jnp.floating) else ts
    return _solve(model, solver, x_T, ts, key, cond, save_trajectory, adjoint, throw, brownian)


def sample(
    model: Model,
    solver: AbstractDiffusionSolver | Diffrax,
    x_T: Array,
    ts: ArrayLike,
    *,
    key: PRNGKeyArray | None = None,
    cond: Any = None,
    brownian: str | diffrax.AbstractBrownianPath = "fold_in",
) -> Array:
    """Samples at `ts[-1]` from noise `x_T[B, ...]` at `ts[0]`; see `solve`. Returns `[B, ...]`."""
    return solve(model, solver, x_T, ts, key=key, cond=cond, brownian=brownian).samples
