"""Learned time grids: `optimize` fits a grid to a model and a solver by gradient descent.

The grid is learned by differentiating the sampler's error through `jdiff.solve` (diffrax's
adjoints, DESIGN §3). For noise $x_T^{(b)}$, $b = 1..B$, an accurate reference solution
$x^\\star_b$ of the probability-flow ODE from the same noise (computed once with
`jdiff.solvers.Diffrax(diffrax.Dopri8(), rtol, atol)`), and the solver's output
$\\Phi_{ts}(x_T^{(b)})$ on the grid `ts`, the objective is the mean squared error of the final
sample

$$L(ts) = \\frac{1}{B\\,D}\\sum_{b=1}^{B}\\lVert \\Phi_{ts}(x_T^{(b)}) - x^\\star_b\\rVert^2,$$

minimised with Adam (optax). The grid is parameterised so that every iterate is a valid grid with
the same endpoints: in a coordinate $u$ that increases from noise to data ($u = \\lambda$, the
half log-SNR, when it is finite at both ends; else $u = -t$),

$$u_i = u_0 + (u_N - u_0)\\sum_{j < i} \\big[\\delta + (1 - N\\delta)\\,\\mathrm{softmax}(w)_j\\big],$$

with free logits $w \\in \\mathbb R^N$ and a floor $\\delta = 10^{-3}/N$ on each increment's share,
so the grid stays strictly decreasing in t and its endpoints are fixed exactly. The logits start at
the increments of the initial grid (`init`), so iteration 0 is that grid, and the returned grid
is the iterate with the lowest loss seen (never worse than `init` on the training batch).

With `end_at_zero=True` the last step goes into σ = 0 (`process.t_zero`); it is fixed, the
`n_steps` points before it are learned, and the target is what the first-order final step
computes from the exact state: $\\alpha(t_{zero})\\,\\hat x_0(x^\\star(t_{N-1}), t_{N-1})$ (the
PF-ODE velocity is singular at σ = 0 for VP processes, so no adaptive solve can reach it).

Related work that learns or optimises sampling schedules: Watson et al. 2022 ("Learning fast
samplers for diffusion models by differentiating through sample quality"), Sabour, Fidler, Kreis
2024 ("Align Your Steps"), Xue et al. 2024 ("Accelerating diffusion sampling with optimized time
steps").
"""

from __future__ import annotations

from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from jdiff.model import Model
from jdiff.process.base import broadcast_to_batch
from jdiff.sampling import solve
from jdiff.solvers.adaptive import Diffrax
from jdiff.solvers.base import AbstractDiffusionSolver
from jdiff.timesteps import get_grid, validate

__all__ = ["optimize", "OptimizeInfo", "grid_from_logits", "reference_solution"]

_SPACES = ("auto", "lam", "t")


class OptimizeInfo(NamedTuple):
    """Diagnostics of `optimize(..., return_info=True)`.

    Attributes:
        losses: `[n_iters]` training loss (MSE of the final sample) at each iterate.
        init_loss: loss of the initial grid.
        best_loss: loss of the returned grid (the best iterate).
        space: the coordinate the increments live in (`"lam"` or `"t"`).
    """

    losses: np.ndarray
    init_loss: float
    best_loss: float
    space: str


def _floor(n: int) -> float:
    return 1e-3 / n


def _to_u(process, ts: Array, space: str) -> Array:
    return process.lam(ts) if space == "lam" else -ts


def _from_u(process, us: Array, space: str) -> Array:
    return process.t_of_lam(us) if space == "lam" else -us


def grid_from_logits(
    process, logits: Array, t_first: ArrayLike, t_last: ArrayLike, space: str, t_zero=None
) -> Array:
    """The grid parameterised by `logits[N]` (see the module docstring); differentiable.

    Args:
        process: the forward process.
        logits: `[N]` free logits of the N increments.
        t_first, t_last: fixed endpoints (t_first > t_last).
        space: `"lam"` (increments in λ) or `"t"` (increments in t).
        t_zero: if given, appended as the final point (a last step into σ = 0).

    Returns:
        `[N + 1]` (or `[N + 2]` with `t_zero`) strictly decreasing times.
    """
    n = logits.shape[0]
    dtype = logits.dtype
    t_first = jnp.asarray(t_first, dtype)
    t_last = jnp.asarray(t_last, dtype)
    u0, u1 = _to_u(process, t_first, space), _to_u(process, t_last, space)
    delta = _floor(n)
    frac = delta + (1.0 - n * delta) * jax.nn.softmax(logits)
    cum = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(frac)[:-1]])
    us = u0 + (u1 - u0) * cum
    ts = _from_u(process, us, space).astype(dtype).at[0].set(t_first)
    ts = jnp.concatenate([ts, t_last[None]])
    if t_zero is not None:
        ts = jnp.concatenate([ts, jnp.asarray([t_zero], dtype)])
    return ts


def _logits_from_grid(process, ts: Array, space: str) -> Array:
    us = np.asarray(_to_u(process, ts, space), np.float64)
    d = np.diff(us)
    n = d.shape[0]
    delta = _floor(n)
    frac = d / d.sum()
    soft = np.maximum((frac - delta) / (1.0 - n * delta), 1e-12)
    return jnp.asarray(np.log(soft), ts.dtype)


def reference_solution(
    model: Model,
    x_T: Array,
    t_first: ArrayLike,
    t_last: ArrayLike,
    *,
    cond: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Array:
    """Accurate PF-ODE solution at `t_last` from `x_T[B, ...]` at `t_first` (shaped like `x_T`).

    `jdiff.solvers.Diffrax(diffrax.Dopri8(), rtol, atol)`; tolerances default to 1e-10 in float64
    and 1e-6 in float32.
    """
    tight = 1e-10 if x_T.dtype == jnp.float64 else 1e-6
    ref = Diffrax(
        diffrax.Dopri8(),
        rtol=tight if rtol is None else rtol,
        atol=tight if atol is None else atol,
        max_steps=65536,
    )
    ts = jnp.asarray([t_first, t_last], x_T.dtype)
    return solve(model, ref, x_T, ts, cond=cond).samples


def _resolve_space(process, t_first, t_last, space: str) -> str:
    if space not in _SPACES:
        raise ValueError(f"space must be one of {list(_SPACES)}; got {space!r}")
    if space != "auto":
        return space
    lams = np.asarray(process.lam(jnp.asarray([t_first, t_last])))
    return "lam" if np.all(np.isfinite(lams)) else "t"


def _init_grid(process, n_steps, init, t_start, t_end, end_at_zero) -> Array:
    if isinstance(init, str):
        kwargs = {} if t_start is None and t_end is None else dict(t_start=t_start, t_end=t_end)
        return get_grid(init)(process, n_steps, end_at_zero=end_at_zero, **kwargs)
    ts = validate(process, init)
    if ts.shape[0] != n_steps + 1:
        raise ValueError(f"init grid has {ts.shape[0] - 1} steps; n_steps = {n_steps}")
    at_zero = process.t_zero is not None and float(ts[-1]) == float(process.t_zero)
    if at_zero != bool(end_at_zero):
        raise ValueError(
            f"init grid {'ends' if at_zero else 'does not end'} at σ = 0 but "
            f"end_at_zero={end_at_zero}"
        )
    return ts


@eqx.filter_jit
def _fit(model, solver, logits0, x_T, target, cond, t_first, t_last, t_zero, static, lr):
    space, n_iters, adjoint = static
    opt = optax.adam(lr)
    process = model.process

    def loss_fn(logits):
        ts = grid_from_logits(process, logits, t_first, t_last, space, t_zero)
        out = solve(model, solver, x_T, ts, cond=cond, adjoint=adjoint).samples
        return jnp.mean((out - target) ** 2)

    def body(carry, _):
        logits, state, best, best_loss = carry
        loss, grad = jax.value_and_grad(loss_fn)(logits)
        ok = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad))
        better = ok & (loss < best_loss)
        best = jnp.where(better, logits, best)
        best_loss = jnp.where(better, loss, best_loss)
        updates, new_state = opt.update(jnp.where(ok, grad, 0.0), state, logits)
        new_logits = optax.apply_updates(logits, updates)
        logits = jnp.where(ok, new_logits, logits)
        state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_state, state)
        return (logits, state, best, best_loss), loss

    inf = jnp.asarray(jnp.inf, logits0.dtype)
    carry = (logits0, opt.init(logits0), logits0, inf)
    (_, _, best, best_loss), losses = jax.lax.scan(body, carry, None, length=n_iters)
    final_loss = loss_fn(best)
    return best, best_loss, final_loss, losses


def optimize(
    model: Model,
    solver: AbstractDiffusionSolver,
    n_steps: int,
    *,
    x_T: Array | None = None,
    key: PRNGKeyArray | None = None,
    batch: int = 256,
    data_shape: tuple[int, ...] | None = None,
    init: str | ArrayLike = "log_snr",
    t_start: float | None = None,
    t_end: float | None = None,
    reference: Array | None = None,
    n_iters: int = 200,
    learning_rate: float = 0.05,
    end_at_zero: bool = False,
    space: str = "auto",
    cond: Any = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    return_info: bool = False,
) -> Array | tuple[Array, OptimizeInfo]:
    """Learn an `n_steps` grid for `solver` on `model` by minimising the final-sample MSE.

    See the module docstring for the objective $L(ts) = \\mathrm{mean}\\lVert\\Phi_{ts}(x_T) -
    x^\\star\\rVert^2$ and the parameterisation (softmax increments in λ or t, fixed endpoints).

    Args:
        model: the `jdiff.Model` to sample (an analytic oracle or a trained network).
        solver: a deterministic jdiff solver (e.g. `DDIM()`, `DPMSolverPP(order=2)`).
        n_steps: number of solver steps N (≥ 1; with N = 1, or N = 1 into σ = 0, nothing is free
            and the initial grid is returned).
        x_T: `[B, ...]` training noise at `ts[0]`; or give `key`, `batch`, `data_shape` to draw it
            from `process.prior_sample`.
        init: initial grid: a `jdiff.timesteps` name (`"uniform"`, `"log_snr"`, `"karras"`,
            `"quadratic"`) or an `[N + 1]` array. Its endpoints are kept.
        t_start, t_end: endpoints passed to a named `init` builder (e.g. `t_start=1 - 1e-3` for
            `Linear` with `"log_snr"`).
        reference: `[B, ...]` target; default: `reference_solution` from `x_T` (Dopri8, rtol =
            atol = 1e-10 in float64), or its denoised value with `end_at_zero`.
        n_iters, learning_rate: Adam iterations (all inside one compiled `lax.scan`) and step size.
        end_at_zero: the grid's last step goes into σ = 0 (fixed); the points before it are learned.
        space: `"auto"` (λ if finite at both ends, else t), `"lam"` or `"t"`.
        cond: conditioning passed to the model.
        adjoint: diffrax adjoint for the gradient (default `RecursiveCheckpointAdjoint`).
        return_info: also return an `OptimizeInfo` with the loss history.

    Returns:
        The learned `[N + 1]` grid, an ordinary array validated by `jdiff.timesteps.validate`
        (and an `OptimizeInfo` if `return_info`).

    Raises:
        ValueError: for a stochastic or adaptive solver, a bad `init`, or missing noise.
    """
    if not isinstance(model, Model):
        raise ValueError(f"model must be a jdiff.Model; got {type(model).__name__}")
    if not isinstance(solver, AbstractDiffusionSolver) or getattr(solver, "stochastic", False):
        raise ValueError(
            "optimize needs a deterministic fixed-grid jdiff solver (e.g. DDIM(), Euler(), "
            f"DPMSolverPP(order=2)); got {solver!r}"
        )
    if not isinstance(n_steps, int | np.integer) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer; got {n_steps!r}")
    if not isinstance(n_iters, int | np.integer) or n_iters < 1:
        raise ValueError(f"n_iters must be a positive integer; got {n_iters!r}")
    process = model.process
    if x_T is None:
        if key is None or data_shape is None:
            raise ValueError("pass x_T=[B, ...], or key=..., batch=... and data_shape=(...)")
        x_T = process.prior_sample(key, (batch, *tuple(data_shape)))
    x_T = jnp.asarray(x_T)
    ts0 = _init_grid(process, int(n_steps), init, t_start, t_end, end_at_zero).astype(x_T.dtype)
    free = ts0[:-1] if end_at_zero else ts0
    t_zero = process.t_zero if end_at_zero else None
    t_first, t_last = float(free[0]), float(free[-1])
    space = _resolve_space(process, t_first, t_last, space)
    if reference is None:
        reference = reference_solution(model, x_T, t_first, t_last, cond=cond)
        if end_at_zero:
            x0 = model.x0(reference, jnp.asarray(t_last, x_T.dtype), cond)
            reference = broadcast_to_batch(process.alpha(t_zero), x0) * x0
    reference = jnp.asarray(reference, x_T.dtype)
    if reference.shape != x_T.shape:
        raise ValueError(f"reference must be shaped like x_T {x_T.shape}; got {reference.shape}")
    if free.shape[0] < 3:  # a single free step: both of its ends are fixed
        out = validate(process, ts0)
        if return_info:
            err = float(
                jnp.mean((solve(model, solver, x_T, out, cond=cond).samples - reference) ** 2)
            )
            return out, OptimizeInfo(np.full((0,), err), err, err, space)
        return out
    logits0 = _logits_from_grid(process, free, space)
    best, best_loss, final_loss, losses = _fit(
        model,
        solver,
        logits0,
        x_T,
        reference,
        cond,
        jnp.asarray(t_first, x_T.dtype),
        jnp.asarray(t_last, x_T.dtype),
        t_zero,
        (space, int(n_iters), adjoint),
        learning_rate,
    )
    ts = grid_from_logits(process, best, t_first, t_last, space, t_zero)
    ts = validate(process, np.asarray(ts))
    if return_info:
        losses = np.asarray(losses)
        return ts, OptimizeInfo(losses, float(losses[0]), float(final_loss), space)
    return ts
