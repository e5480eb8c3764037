"""Gaussian data $\\mathcal N(\\mu, \\Sigma)$: exact oracles and the exact PF-ODE flow map.

For any process, $p_t = \\mathcal N(\\alpha\\mu, \\alpha^2\\Sigma + \\sigma^2 I)$ (monograph §3.0). The
probability-flow ODE is linear; in the eigenbasis $\\Sigma = U\\,\\mathrm{diag}(\\lambda)\\,U^\\top$
each coordinate keeps its standardised value $(x_i - \\alpha\\mu_i)/R_i$ constant, so the flow map
from time s to time t is

$$\\Psi_{s\\to t}(x) = \\alpha_t\\mu + U\\,\\mathrm{diag}\\!\\left(\\frac{R_t}{R_s}\\right)U^\\top
(x - \\alpha_s\\mu), \\qquad R_{t,i} = \\sqrt{\\alpha_t^2\\lambda_i + \\sigma_t^2},$$

which for isotropic $\\Sigma = c^2 I$ is $\\alpha_t\\mu + (R_t/R_s)(x - \\alpha_s\\mu)$ with
$R_t = \\sqrt{\\alpha_t^2c^2 + \\sigma_t^2}$. It is the exact target of consistency models
($\\Psi_{s\\to 0}$), CTM ($\\Psi_{s\\to t}$) and MeanFlow ($h^* = (\\Psi_{s\\to t}(x) - x)/(t - s)$),
and the ground truth for solver convergence-order tests.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from jdiff.analytic.base import AbstractOracle, _as_float_array, _batch_times
from jdiff.analytic.mixture import GaussianMixture
from jdiff.process.base import AbstractProcess, broadcast_to_batch

__all__ = ["Gaussian"]


class Gaussian(AbstractOracle):
    """Gaussian data $\\mathcal N(\\mu, \\Sigma)$ (a one-component `GaussianMixture`).

    Args:
        mean: `[D]` mean μ.
        cov: `[D, D]` covariance Σ (symmetric positive definite). See `Gaussian.isotropic` for
            $\\Sigma = c^2 I$.

    Raises:
        ValueError: on bad shapes or a covariance that is not symmetric positive definite.

    Oracles (all for any process; `x[B, ...]`, `t` scalar or `[B]`):
    $\\nabla\\log p_t = -C^{-1}(x - \\alpha\\mu)$, $\\hat x_0 = \\mu + \\alpha\\Sigma C^{-1}(x - \\alpha\\mu)$,
    $C = \\alpha^2\\Sigma + \\sigma^2 I$; plus the exact flow map `flow_map`.
    """

    mixture: GaussianMixture

    def __init__(self, mean: ArrayLike, cov: ArrayLike):
        mean = _as_float_array(mean, "mean")
        cov = _as_float_array(cov, "cov")
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape [D]; got {mean.shape}")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(f"cov must have shape [D, D] = [{d}, {d}]; got {cov.shape}")
        self.mixture = GaussianMixture(jnp.ones((1,), mean.dtype), mean[None], cov[None])

    @classmethod
    def isotropic(cls, mean: ArrayLike, std: ArrayLike) -> Gaussian:
        """$\\mathcal N(\\mu, c^2 I)$ from `mean[D]` and a positive scalar `std` = c."""
        mean = _as_float_array(mean, "mean")
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape [D]; got {mean.shape}")
        std = jnp.asarray(std, mean.dtype)
        if std.ndim != 0:
            raise ValueError(f"std must be a scalar; got shape {std.shape}")
        return cls(mean, std**2 * jnp.eye(mean.shape[0], dtype=mean.dtype))

    @property
    def dim(self) -> int:
        """Data dimension D."""
        return self.mixture.dim

    @property
    def mean(self) -> Array:
        """`[D]` mean μ."""
        return self.mixture.means[0]

    @property
    def cov(self) -> Array:
        """`[D, D]` covariance Σ."""
        return self.mixture.covs[0]

    def log_prob(self, x: Array) -> Array:
        """Data log-density $\\log\\mathcal N(x; \\mu, \\Sigma)$, `x[B, ...]` → `[B]`."""
        return self.mixture.log_prob(x)

    def marginal_log_prob(self, x: Array, t: ArrayLike, process: AbstractProcess) -> Array:
        """$\\log\\mathcal N(x; \\alpha\\mu, \\alpha^2\\Sigma + \\sigma^2 I)$, `x[B, ...]` → `[B]`."""
        return self.mixture.marginal_log_prob(x, t, process)

    def _x0_eps_score(self, x, a, s, labels):
        return self.mixture._x0_eps_score(x, a, s, None)

    def sample(self, key: PRNGKeyArray, n: int) -> Array:
        """Draw `n` data samples, `[n, D]`."""
        return self.mixture.sample(key, n)

    # --- exact flow map -----------------------------------------------------------------------
    def flow_map(self, x: Array, s: ArrayLike, t: ArrayLike, process: AbstractProcess) -> Array:
        """Exact PF-ODE flow map $\\Psi_{s\\to t}(x)$ (see the module docstring).

        Args:
            x: `[B, ...]` samples at time `s`.
            s: start times, scalar or `[B]`.
            t: end times, scalar or `[B]` (either direction; `t = s` is the identity).
            process: the forward process.

        Returns:
            `[B, ...]`, shaped like `x`: $\\alpha_t\\mu + U\\,\\mathrm{diag}(R_t/R_s)\\,U^\\top
            (x - \\alpha_s\\mu)$ with $R^2 = \\alpha^2\\lambda + \\sigma^2$.
        """
        x, xf, t = self._prepare(x, t, process)
        s = _batch_times(s, xf.shape[0], "s")
        if not jnp.issubdtype(s.dtype, jnp.floating):
            s = s.astype(jnp.result_type(float))
        return self._flow_map(xf, s, t, process).reshape(x.shape)

    def _flow_map(self, xf, s, t, process):
        b = xf.shape[0]
        a_s = jnp.broadcast_to(process.alpha(s), (b,))[:, None]
        sg_s = jnp.broadcast_to(process.sigma(s), (b,))[:, None]
        a_t = jnp.broadcast_to(process.alpha(t), (b,))[:, None]
        sg_t = jnp.broadcast_to(process.sigma(t), (b,))[:, None]
        lam = self.mixture.eigvals[0][None]  # [1, D]
        u = self.mixture.eigvecs[0]  # [D, D], columns are eigenvectors
        ratio = jnp.sqrt((a_t**2 * lam + sg_t**2) / (a_s**2 * lam + sg_s**2))  # R_t / R_s
        z = (xf - a_s * self.mean) @ u
        return a_t * self.mean + (ratio * z) @ u.T

    def average_velocity(
        self, x: Array, s: ArrayLike, t: ArrayLike, process: AbstractProcess
    ) -> Array:
        """MeanFlow's exact average velocity $h^*(x, s, t) = (\\Psi_{s\\to t}(x) - x)/(t - s)$.

        Shapes as in `flow_map`; requires t ≠ s (use `velocity` for the limit t → s).
        """
        x = jnp.asarray(x)
        dt = jnp.asarray(t) - jnp.asarray(s)
        return (self.flow_map(x, s, t, process) - x) / broadcast_to_batch(dt, x)
