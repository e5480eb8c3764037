"""Processes with α = 1: the variance-exploding SDE and EDM.

VE (Song & Ermon 2019; Song et al. 2021): $\\sigma(t) = \\sigma_{min}(\\sigma_{max}/\\sigma_{min})^t$,
$t \\in [0, 1]$, $f = 0$, $g^2 = 2\\sigma^2\\log(\\sigma_{max}/\\sigma_{min})$.

EDM (Karras et al. 2022): $\\alpha = 1$, $\\sigma = t \\in [\\sigma_{min}, \\sigma_{max}]$,
$f = 0$, $g^2 = 2t$; σ = 0 at t = 0, where a grid may end.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.process.base import AbstractProcess

__all__ = ["VE", "EDM"]


class _UnitAlpha(AbstractProcess):
    def log_alpha(self, t: ArrayLike) -> Array:
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(float)))

    def dlog_alpha(self, t: ArrayLike) -> Array:
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(float)))


class VE(_UnitAlpha):
    """Variance-exploding SDE (NCSN / score SDE), time in [0, 1].

    Args:
        sigma_min, sigma_max: σ range (defaults 0.01, 50 as in score_sde's CIFAR-10 config).
    """

    sigma_min: float
    sigma_max: float

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not (0 < sigma_min < sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.t_min = 0.0
        self.t_max = 1.0
        self.t_zero = None

    def _log_ratio(self):
        return jnp.log(self.sigma_max) - jnp.log(self.sigma_min)

    def log_sigma(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return jnp.log(self.sigma_min) + t * self._log_ratio()

    def dlog_sigma(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return jnp.zeros_like(t) + self._log_ratio()

    def g2(self, t: ArrayLike) -> Array:
        return 2.0 * self.sigma(t) ** 2 * self._log_ratio()

    def t_of_lam(self, lam: ArrayLike) -> Array:
        lam = jnp.asarray(lam, dtype=jnp.result_type(float))
        return (-lam - jnp.log(self.sigma_min)) / self._log_ratio()


class EDM(_UnitAlpha):
    """The EDM process (Karras et al. 2022): α = 1, σ = t.

    Args:
        sigma_min, sigma_max: the sampling range of σ = t (defaults 0.002, 80). σ = 0 at `t_zero` = 0.
    """

    sigma_min: float
    sigma_max: float

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        if not (0 < sigma_min < sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.t_min = float(sigma_min)
        self.t_max = float(sigma_max)
        self.t_zero = 0.0

    def log_sigma(self, t: ArrayLike) -> Array:
        return jnp.log(jnp.asarray(t, dtype=jnp.result_type(float)))

    def dlog_sigma(self, t: ArrayLike) -> Array:
        return 1.0 / jnp.asarray(t, dtype=jnp.result_type(float))

    def sigma(self, t: ArrayLike) -> Array:
        return jnp.asarray(t, dtype=jnp.result_type(float))

    def g2(self, t: ArrayLike) -> Array:
        return 2.0 * jnp.asarray(t, dtype=jnp.result_type(float))

    def t_of_lam(self, lam: ArrayLike) -> Array:
        return jnp.exp(-jnp.asarray(lam, dtype=jnp.result_type(float)))
