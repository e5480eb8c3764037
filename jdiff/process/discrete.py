"""Discrete-time DDPM schedules given by a β array, with DPM-Solver's continuous extension.

Ho et al. (2020) use variances: $\\bar\\alpha^{Ho}_n = \\prod_{k\\le n}(1-\\beta_k)$, so in jdiff's notation
$\\alpha_n = \\sqrt{\\bar\\alpha^{Ho}_n}$, $\\log\\alpha_n = \\tfrac12\\sum_{k\\le n}\\log(1-\\beta_k)$, and
$\\sigma_n = \\sqrt{1-\\alpha_n^2}$.

Continuous extension (Lu et al. 2022, DPM-Solver's discrete `NoiseScheduleVP`): step n ∈ {0..N−1}
sits at time $t_n = (n+1)/N$ and log α is interpolated linearly in t between the $t_n$. jdiff also
pins $\\log\\alpha(0) = 0$ (so σ(0) = 0, where a grid may end) and interpolates linearly on
[0, 1/N]; on [1/N, 1] the extension is identical to DPM-Solver's. The network's integer step for a
time t is `discrete_step(t) = N t − 1`.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from jdiff.process.base import AbstractProcess
from jdiff.process.vp import _log_alpha_of_lam_vp, _log_sigma_vp

__all__ = ["Discrete", "linear_betas"]


def linear_betas(n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """Ho et al.'s linear β (variance) schedule, `[n]` float64."""
    return np.linspace(beta_start, beta_end, n, dtype=np.float64)


class Discrete(AbstractProcess):
    """A DDPM schedule from β variances, extended to continuous time.

    Args:
        betas: `[N]` per-step variances β_n ∈ (0, 1) (Ho et al. convention).

    Attributes:
        t_grid: `[N+1]` knot times `(0, 1/N, ..., 1)`.
        log_alpha_grid: `[N+1]` log α at the knots (0 at t = 0).
    """

    t_grid: Array
    log_alpha_grid: Array
    num_steps: int = eqx.field(static=True)

    def __init__(self, betas: ArrayLike):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 2:
            raise ValueError(f"betas must be a 1-D array of length >= 2; got shape {betas.shape}")
        if not np.all((betas > 0) & (betas < 1)):
            raise ValueError("betas must lie in (0, 1) (they are variances, as in Ho et al.)")
        n = betas.size
        log_alpha = 0.5 * np.cumsum(np.log1p(-betas))
        self.num_steps = n
        self.t_grid = jnp.asarray(np.linspace(0.0, 1.0, n + 1))
        self.log_alpha_grid = jnp.asarray(np.concatenate([[0.0], log_alpha]))
        self.t_min = 1.0 / n
        self.t_max = 1.0
        self.t_zero = 0.0

    def log_alpha(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        tg = self.t_grid.astype(t.dtype)
        la = self.log_alpha_grid.astype(t.dtype)
        return jnp.interp(t, tg, la)

    def log_sigma(self, t: ArrayLike) -> Array:
        return _log_sigma_vp(self.log_alpha(t))

    def dlog_sigma(self, t: ArrayLike) -> Array:
        la = self.log_alpha(t)
        return -jnp.exp(2 * la) * self.dlog_alpha(t) / -jnp.expm1(2 * la)

    def g2(self, t: ArrayLike) -> Array:
        return -2.0 * self.dlog_alpha(t)

    def t_of_lam(self, lam: ArrayLike) -> Array:
        la = _log_alpha_of_lam_vp(lam)
        # log α is decreasing in t: interpolate t as a function of −log α (increasing).
        return jnp.interp(-la, -self.log_alpha_grid.astype(la.dtype), self.t_grid.astype(la.dtype))

    def discrete_step(self, t: ArrayLike) -> Array:
        """The (real-valued) DDPM step index $n = N t - 1$ for time t."""
        return self.num_steps * jnp.asarray(t) - 1.0

    def betas(self) -> Array:
        """Recover the `[N]` β array: $\\beta_n = 1 - \\alpha_n^2/\\alpha_{n-1}^2$."""
        return -jnp.expm1(2.0 * jnp.diff(self.log_alpha_grid))
