"""Time grids for sampling: strictly decreasing arrays from `t_max` to `t_min` (DESIGN §2).

Every builder takes `(process, n_steps, ...)` and returns `n_steps + 1` times. With
`end_at_zero=True` the scheme places its `n_steps` points on [t_min, t_max] and appends the time
where σ = 0 (`process.t_zero`), as EDM does with σ_N = 0; the solvers take their first-order
update into that point without evaluating the network there.

| grid | spacing | reference |
|---|---|---|
| `uniform` | uniform in t | Ho et al. 2020; Song et al. 2021 |
| `log_snr` | uniform in λ = log α − log σ | Lu et al. 2022 (DPM-Solver "logSNR") |
| `karras` | uniform in σ̄^{1/ρ}, σ̄ = σ/α, ρ = 7 | Karras et al. 2022 |
| `quadratic` | uniform in √(t − t_min) | Song, Meng, Ermon 2021 (DDIM "quad") |
| `custom` | any validated array | |
| `optimize` | learned by differentiating the sampler's error (`jdiff.timesteps_optimize`) | |
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from jdiff.process.base import AbstractProcess

__all__ = [
    "uniform",
    "log_snr",
    "karras",
    "quadratic",
    "custom",
    "optimize",
    "validate",
    "GRIDS",
    "get_grid",
]


def _n(n_steps: int) -> int:
    if not isinstance(n_steps, int | np.integer) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer; got {n_steps!r}")
    return int(n_steps)


def _ends(process, t_start, t_end):
    t0 = process.t_max if t_start is None else float(t_start)
    t1 = process.t_min if t_end is None else float(t_end)
    if not t0 > t1:
        raise ValueError(f"t_start must exceed t_end; got {t0} <= {t1}")
    return t0, t1


def _finish(process: AbstractProcess, pts: Array, end_at_zero: bool) -> Array:
    dtype = jnp.result_type(float)
    pts = jnp.asarray(pts, dtype)
    if end_at_zero:
        if process.t_zero is None:
            raise ValueError(f"{type(process).__name__} never reaches σ = 0; use end_at_zero=False")
        pts = jnp.concatenate([pts, jnp.asarray([process.t_zero], dtype)])
    return validate(process, pts)


def _count(n_steps: int, end_at_zero: bool) -> int:
    # number of points the scheme itself places
    return _n(n_steps) if end_at_zero else _n(n_steps) + 1


def _lam_ends(process, t0, t1, name):
    l0 = float(process.lam(jnp.asarray(t0)))
    l1 = float(process.lam(jnp.asarray(t1)))
    if not (np.isfinite(l0) and np.isfinite(l1)):
        raise ValueError(
            f"{name} grid needs a finite log-SNR at both ends; λ({t0}) = {l0}, λ({t1}) = {l1}. "
            "Pass t_start slightly below t_max (e.g. 1 - 1e-3 for Linear/Trig)."
        )
    return l0, l1


def uniform(
    process: AbstractProcess, n_steps: int, *, t_start=None, t_end=None, end_at_zero: bool = False
) -> Array:
    """Times uniform in t from `t_start` (default `t_max`) to `t_end` (default `t_min`).

    Returns:
        `[n_steps + 1]` strictly decreasing times.
    """
    t0, t1 = _ends(process, t_start, t_end)
    return _finish(process, jnp.linspace(t0, t1, _count(n_steps, end_at_zero)), end_at_zero)


def log_snr(
    process: AbstractProcess, n_steps: int, *, t_start=None, t_end=None, end_at_zero: bool = False
) -> Array:
    """Times uniform in λ (DPM-Solver's "logSNR" grid). Returns `[n_steps + 1]` times."""
    t0, t1 = _ends(process, t_start, t_end)
    l0, l1 = _lam_ends(process, t0, t1, "log_snr")
    lams = jnp.linspace(l0, l1, _count(n_steps, end_at_zero))
    ts = process.t_of_lam(lams).at[0].set(t0).at[-1].set(t1)
    return _finish(process, ts, end_at_zero)


def karras(
    process: AbstractProcess,
    n_steps: int,
    *,
    rho: float = 7.0,
    t_start=None,
    t_end=None,
    end_at_zero: bool = False,
) -> Array:
    """Karras et al. (2022) grid: uniform in $\\bar\\sigma^{1/\\rho}$ with $\\bar\\sigma = \\sigma/\\alpha$.

    $\\bar\\sigma_i = (\\bar\\sigma_{max}^{1/\\rho} + \\tfrac{i}{N-1}(\\bar\\sigma_{min}^{1/\\rho}
    - \\bar\\sigma_{max}^{1/\\rho}))^\\rho$, mapped to t by `t_of_lam(-log σ̄)`. Returns
    `[n_steps + 1]` times.
    """
    if rho <= 0:
        raise ValueError(f"rho must be positive; got {rho}")
    t0, t1 = _ends(process, t_start, t_end)
    l0, l1 = _lam_ends(process, t0, t1, "karras")
    s0, s1 = np.exp(-l0) ** (1 / rho), np.exp(-l1) ** (1 / rho)
    sb = jnp.linspace(s0, s1, _count(n_steps, end_at_zero)) ** rho
    ts = process.t_of_lam(-jnp.log(sb)).at[0].set(t0).at[-1].set(t1)
    return _finish(process, ts, end_at_zero)


def quadratic(
    process: AbstractProcess, n_steps: int, *, t_start=None, t_end=None, end_at_zero: bool = False
) -> Array:
    """Quadratic spacing, denser near the data: $t = t_{end} + (t_{start}-t_{end})u^2$, u uniform."""
    t0, t1 = _ends(process, t_start, t_end)
    u = jnp.linspace(1.0, 0.0, _count(n_steps, end_at_zero))
    return _finish(process, t1 + (t0 - t1) * u**2, end_at_zero)


def custom(process: AbstractProcess, ts: ArrayLike) -> Array:
    """Validate a user grid: 1-D, length ≥ 2, strictly decreasing, inside the process's domain."""
    return validate(process, ts)


def validate(process: AbstractProcess, ts: ArrayLike) -> Array:
    """Check a grid and return it as an array; raises `ValueError` naming the problem.

    Concrete grids are checked on the host; traced grids are checked inside the compiled program
    by `jdiff.sampling` with `equinox.error_if`.
    """
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"a time grid must be 1-D with at least 2 points; got shape {ts.shape}")
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        ts = ts.astype(jnp.result_type(float))
    if isinstance(ts, jax.core.Tracer):
        return ts
    d = np.diff(np.asarray(ts))
    if not np.all(d < 0):
        raise ValueError(
            "a time grid must be strictly decreasing (from t_max, noise, to t_min, data); "
            f"got {np.asarray(ts)}"
        )
    if not np.all(np.isfinite(np.asarray(ts))):
        raise ValueError(f"a time grid must be finite; got {np.asarray(ts)}")
    process.check_times(ts)
    return ts


GRIDS = {"uniform": uniform, "log_snr": log_snr, "karras": karras, "quadratic": quadratic}


def get_grid(name: str):
    """The grid builder called `name`; `ValueError` naming the valid choices otherwise."""
    try:
        return GRIDS[name]
    except KeyError:
        raise ValueError(f"unknown time grid {name!r}; valid choices: {sorted(GRIDS)}") from None


def optimize(model, solver, n_steps, **kwargs):
    """Learn an `n_steps` grid for `solver` on `model`; returns `[n_steps + 1]` times.

    The grid minimises the mean squared error of the final sample against a tight adaptive
    reference solution from the same noise, by differentiating through `jdiff.solve`. See
    `jdiff.timesteps_optimize.optimize` for the objective, the parameterisation and the keyword
    arguments (`x_T` or `key` + `data_shape`, `init`, `n_iters`, `learning_rate`, `end_at_zero`,
    …). It lives in its own module because it needs the sampling driver, which needs this one.
    """
    from jdiff.timesteps_optimize import optimize as _optimize

    return _optimize(model, solver, n_steps, **kwargs)
