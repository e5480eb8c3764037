"""A finite data set (weighted Dirac measure): the memorising optimal denoiser.

For $p_0 = \\sum_j w_j\\,\\delta_{y_j}$ (monograph §3.0), $p_t(x) = \\sum_j w_j\\,
\\mathcal N(x; \\alpha y_j, \\sigma^2 I)$ and

$$\\hat x_0(x) = \\sum_j \\operatorname{softmax}_j\\!\\Big(\\log w_j - \\frac{\\|x - \\alpha y_j\\|^2}
{2\\sigma^2}\\Big)\\,y_j, \\qquad \\nabla\\log p_t(x) = -\\frac{x - \\alpha\\hat x_0}{\\sigma^2},
\\qquad \\hat\\varepsilon = \\frac{x - \\alpha\\hat x_0}{\\sigma}.$$

For a single point $\\hat x_0 \\equiv y$, so first-order data-prediction solvers (DDIM,
DPM-Solver++) are exact in one step. The score is unbounded as σ → 0 off the data (the data have
no density); predictions at σ = 0 are not defined except `"x0"` (nearest point).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from jdiff.analytic.base import (
    AbstractOracle,
    _as_float_array,
    _coeffs,
    _is_concrete,
    _normalise_weights,
)
from jdiff.process.base import AbstractProcess

__all__ = ["PointSet"]


class PointSet(AbstractOracle):
    """A finite data set $\\{y_j\\}$ with weights $w_j$ (uniform by default), with exact oracles.

    Args:
        points: `[N, D]` data points y_j (finite).
        weights: optional `[N]` positive weights summing to 1 (within 1e-4; renormalised).

    Raises:
        ValueError: on bad shapes, non-finite points or bad weights.

    Memory: predictions form `[B, N, D]` differences; keep B·N·D moderate.
    """

    points: Array
    weights: Array

    def __init__(self, points: ArrayLike, weights: ArrayLike | None = None):
        points = _as_float_array(points, "points")
        if points.ndim != 2 or points.shape[0] < 1:
            raise ValueError(f"points must have shape [N, D] with N >= 1; got {points.shape}")
        if _is_concrete(points) and not np.all(np.isfinite(np.asarray(points))):
            raise ValueError("points must be finite")
        self.points = points
        self.weights = _normalise_weights(weights, points.shape[0], "point").astype(points.dtype)

    @property
    def dim(self) -> int:
        """Data dimension D."""
        return self.points.shape[1]

    def _sq_dist(self, x: Array, a: Array) -> Array:
        """$\\|x - \\alpha y_j\\|^2$, `[B, N]`."""
        diff = x[:, None, :] - a[:, None, None] * self.points[None]
        return jnp.sum(diff**2, -1)

    def posterior(self, x: Array, t: ArrayLike, process: AbstractProcess) -> Array:
        """$p_t(x_0 = y_j \\mid x)$, `x[B, ...]` → `[B, N]` (rows sum to 1)."""
        x, xf, t = self._prepare(x, t, process)
        return self._posterior_t(xf, t, process)

    def _posterior_t(self, xf, t, process):
        return self._posterior(xf, *_coeffs(process, t, xf.shape[0]))

    def _posterior(self, x, a, s):
        d2 = self._sq_dist(x, a)
        # Subtract the nearest distance before dividing by σ²: finite logits even as σ → 0.
        d2 = d2 - jnp.min(d2, axis=-1, keepdims=True)
        s2 = jnp.maximum(s**2, jnp.finfo(d2.dtype).tiny)[:, None]
        return jax.nn.softmax(jnp.log(self.weights)[None] - 0.5 * d2 / s2, axis=-1)

    def _x0_eps_score(self, x, a, s, labels):
        x0 = self._posterior(x, a, s) @ self.points
        resid = x - a[:, None] * x0
        return x0, resid / s[:, None], -resid / (s**2)[:, None]

    def marginal_log_prob(self, x: Array, t: ArrayLike, process: AbstractProcess) -> Array:
        """$\\log\\sum_j w_j\\mathcal N(x; \\alpha y_j, \\sigma^2 I)$, `x[B, ...]` → `[B]` (σ > 0)."""
        x, xf, t = self._prepare(x, t, process)
        return self._marginal_log_prob(xf, t, process)

    def _marginal_log_prob(self, xf, t, process):
        a, s = _coeffs(process, t, xf.shape[0])
        d2 = self._sq_dist(xf, a)
        log_n = -0.5 * d2 / (s**2)[:, None] - self.dim * (
            jnp.log(s)[:, None] + 0.5 * math.log(2 * math.pi)
        )
        return jax.nn.logsumexp(jnp.log(self.weights)[None] + log_n, axis=-1)

    def sample(self, key: PRNGKeyArray, n: int) -> Array:
        """Draw `n` data points (with replacement, by weight), `[n, D]`."""
        return self._sample(key, int(n))

    def _sample(self, key, n):
        idx = jax.random.categorical(key, jnp.log(self.weights), shape=(n,))
        return self.points[idx]
