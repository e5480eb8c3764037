"""Interpolant paths used by flow matching: the linear (rectified-flow) path and the trig path.

Linear (Lipman et al. 2023; Liu et al. 2022), in diffusion time (data at 0, noise at 1):
$\\alpha = 1 - t$, $\\sigma = t$, conditional velocity $\\varepsilon - x_0$; $\\lambda = \\log\\frac{1-t}{t}$,
$t(\\lambda) = \\mathrm{sigmoid}(-\\lambda)$.

Trig: $\\alpha = \\cos(\\pi t/2)$, $\\sigma = \\sin(\\pi t/2)$ (variance preserving);
$t(\\lambda) = \\frac{2}{\\pi}\\arctan e^{-\\lambda}$.

Both reach α = 0 at t = 1 (the prior N(0, I) is exact there, but λ(1) = −∞) and σ = 0 at t = 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.process.base import AbstractProcess

__all__ = ["Linear", "Trig"]


def _check_range(t_min, t_max):
    if not (0 < t_min < t_max <= 1.0):
        raise ValueError(f"need 0 < t_min < t_max <= 1; got {t_min}, {t_max}")


class Linear(AbstractProcess):
    """Linear / rectified-flow path $x_t = (1-t)x_0 + t\\varepsilon$.

    Args:
        t_min: default data end of grids (σ = 0 at `t_zero` = 0, where a grid may end).
        t_max: noise end (default 1, where α = 0).
    """

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0):
        _check_range(t_min, t_max)
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        self.t_zero = 0.0

    def alpha(self, t: ArrayLike) -> Array:
        return 1.0 - jnp.asarray(t, dtype=jnp.result_type(float))

    def sigma(self, t: ArrayLike) -> Array:
        return jnp.asarray(t, dtype=jnp.result_type(float))

    def dalpha(self, t: ArrayLike) -> Array:
        return -jnp.ones_like(jnp.asarray(t, dtype=jnp.result_type(float)))

    def dsigma(self, t: ArrayLike) -> Array:
        return jnp.ones_like(jnp.asarray(t, dtype=jnp.result_type(float)))

    def log_alpha(self, t: ArrayLike) -> Array:
        return jnp.log1p(-jnp.asarray(t, dtype=jnp.result_type(float)))

    def log_sigma(self, t: ArrayLike) -> Array:
        return jnp.log(jnp.asarray(t, dtype=jnp.result_type(float)))

    def dlog_alpha(self, t: ArrayLike) -> Array:
        return -1.0 / (1.0 - jnp.asarray(t, dtype=jnp.result_type(float)))

    def dlog_sigma(self, t: ArrayLike) -> Array:
        return 1.0 / jnp.asarray(t, dtype=jnp.result_type(float))

    def g2(self, t: ArrayLike) -> Array:
        # (σ²)' − 2fσ² = 2t + 2t²/(1−t) = 2t/(1−t)
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return 2.0 * t / (1.0 - t)

    def t_of_lam(self, lam: ArrayLike) -> Array:
        return jax.nn.sigmoid(-jnp.asarray(lam, dtype=jnp.result_type(float)))


class Trig(AbstractProcess):
    """Trigonometric path $\\alpha = \\cos(\\pi t/2)$, $\\sigma = \\sin(\\pi t/2)$.

    Args:
        t_min: default data end of grids (σ = 0 at `t_zero` = 0).
        t_max: noise end (default 1, where α = 0).
    """

    def __init__(self, t_min: float = 1e-3, t_max: float = 1.0):
        _check_range(t_min, t_max)
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        self.t_zero = 0.0

    def alpha(self, t: ArrayLike) -> Array:
        # sin(π(1−t)/2) is exactly 0 at t = 1 in floating point, unlike cos(πt/2).
        return jnp.sin(math.pi / 2 * (1.0 - jnp.asarray(t, dtype=jnp.result_type(float))))

    def sigma(self, t: ArrayLike) -> Array:
        return jnp.sin(math.pi / 2 * jnp.asarray(t, dtype=jnp.result_type(float)))

    def dalpha(self, t: ArrayLike) -> Array:
        return -math.pi / 2 * self.sigma(t)

    def dsigma(self, t: ArrayLike) -> Array:
        return math.pi / 2 * self.alpha(t)

    def log_alpha(self, t: ArrayLike) -> Array:
        return jnp.log(self.alpha(t))

    def log_sigma(self, t: ArrayLike) -> Array:
        return jnp.log(self.sigma(t))

    def dlog_alpha(self, t: ArrayLike) -> Array:
        return -math.pi / 2 * self.sigma(t) / self.alpha(t)

    def dlog_sigma(self, t: ArrayLike) -> Array:
        return math.pi / 2 * self.alpha(t) / self.sigma(t)

    def g2(self, t: ArrayLike) -> Array:
        # VP-type (α² + σ² = 1): g² = −2f = π tan(πt/2)
        return -2.0 * self.dlog_alpha(t)

    def t_of_lam(self, lam: ArrayLike) -> Array:
        lam = jnp.asarray(lam, dtype=jnp.result_type(float))
        return 2.0 / math.pi * jnp.arctan(jnp.exp(-lam))
