"""Variance-preserving processes: linear-β VP, cosine VP and sub-VP.

VP (Song et al. 2021, continuous DDPM): $\\beta(t) = \\beta_{min} + t(\\beta_{max}-\\beta_{min})$,
$\\log\\alpha(t) = -\\tfrac14 t^2(\\beta_{max}-\\beta_{min}) - \\tfrac12 t\\beta_{min}$,
$\\sigma = \\sqrt{1-\\alpha^2}$, so $f = -\\beta/2$ and $g^2 = \\beta$.

Cosine VP (Nichol & Dhariwal 2021): $\\alpha(t) = \\cos(\\tfrac{\\pi}{2}\\tfrac{t+s}{1+s}) /
\\cos(\\tfrac{\\pi}{2}\\tfrac{s}{1+s})$, $\\sigma = \\sqrt{1-\\alpha^2}$.

sub-VP (Song et al. 2021): the VP α with $\\sigma = 1 - \\alpha^2$; $g^2 = \\beta(1-\\alpha^4)$.

All are computed in log space: $\\log\\sigma = \\tfrac12\\log(-\\mathrm{expm1}(2\\log\\alpha))$ is
accurate as t → 0, and λ is inverted in closed form (DPM-Solver's formulas).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.process.base import AbstractProcess

__all__ = ["VP", "VPCosine", "SubVP"]


def _log_alpha_of_lam_vp(lam: ArrayLike) -> Array:
    # alpha^2 / (1 - alpha^2) = e^{2 lam}  =>  log alpha = -1/2 log(1 + e^{-2 lam})
    return -0.5 * jnp.logaddexp(0.0, -2.0 * jnp.asarray(lam))


def _log_sigma_vp(log_alpha: Array) -> Array:
    return 0.5 * jnp.log(-jnp.expm1(2.0 * log_alpha))


class _LinearBeta(AbstractProcess):
    beta_min: float
    beta_max: float

    def __init__(
        self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3, t_max: float = 1.0
    ):
        if not (0 <= beta_min < beta_max):
            raise ValueError(f"need 0 <= beta_min < beta_max; got {beta_min}, {beta_max}")
        if not (0 < t_min < t_max <= 1.0):
            raise ValueError(f"need 0 < t_min < t_max <= 1; got {t_min}, {t_max}")
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        self.t_zero = 0.0

    def beta(self, t: ArrayLike) -> Array:
        """$\\beta(t) = \\beta_{min} + t(\\beta_{max} - \\beta_{min})$."""
        return self.beta_min + jnp.asarray(t) * (self.beta_max - self.beta_min)

    def log_alpha(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def dlog_alpha(self, t: ArrayLike) -> Array:
        return -0.5 * self.beta(jnp.asarray(t, dtype=jnp.result_type(float)))

    def _t_of_log_alpha(self, log_alpha: Array) -> Array:
        # Solve 1/4 Δβ t² + 1/2 β_min t + log α = 0 for t ≥ 0 (rationalized root).
        db = self.beta_max - self.beta_min
        tmp = -4.0 * db * log_alpha
        return tmp / (jnp.sqrt(self.beta_min**2 + tmp) + self.beta_min) / db


class VP(_LinearBeta):
    """Variance-preserving SDE with linear β (continuous DDPM; Song et al. 2021).

    Args:
        beta_min, beta_max: the β range (defaults 0.1, 20 as in score_sde).
        t_min: default data end of sampling grids (σ(t_min) > 0); σ = 0 at `t_zero` = 0.
        t_max: noise end (default 1).
    """

    def log_sigma(self, t: ArrayLike) -> Array:
        return _log_sigma_vp(self.log_alpha(t))

    def dlog_sigma(self, t: ArrayLike) -> Array:
        la = self.log_alpha(t)
        # σ'/σ = -α² f / σ²
        return -jnp.exp(2 * la) * self.dlog_alpha(t) / -jnp.expm1(2 * la)

    def g2(self, t: ArrayLike) -> Array:
        return self.beta(jnp.asarray(t, dtype=jnp.result_type(float)))

    def t_of_lam(self, lam: ArrayLike) -> Array:
        return self._t_of_log_alpha(_log_alpha_of_lam_vp(lam))


class SubVP(_LinearBeta):
    """sub-VP SDE (Song et al. 2021): VP's α with $\\sigma = 1 - \\alpha^2$, $g^2 = \\beta(1-\\alpha^4)$.

    Args: as for `VP`.
    """

    def log_sigma(self, t: ArrayLike) -> Array:
        return jnp.log(-jnp.expm1(2.0 * self.log_alpha(t)))

    def dlog_sigma(self, t: ArrayLike) -> Array:
        la = self.log_alpha(t)
        # σ = 1 - α²  =>  σ'/σ = -2 α² f / (1 - α²)
        return -2.0 * jnp.exp(2 * la) * self.dlog_alpha(t) / -jnp.expm1(2 * la)

    def g2(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return self.beta(t) * -jnp.expm1(4.0 * self.log_alpha(t))

    def t_of_lam(self, lam: ArrayLike) -> Array:
        # e^{2λ} = a / (1 - a)² with a = α²  =>  a = 2E / (2E + 1 + sqrt(4E + 1)), E = e^{2λ}.
        lam = jnp.asarray(lam, dtype=jnp.result_type(float))
        # log a computed stably for both signs of λ.
        two_lam = 2.0 * lam
        log_2e = math.log(2.0) + two_lam
        log_den = jnp.logaddexp(
            jnp.logaddexp(log_2e, 0.0), 0.5 * jnp.logaddexp(math.log(4.0) + two_lam, 0.0)
        )
        log_a = log_2e - log_den
        return self._t_of_log_alpha(0.5 * log_a)


class VPCosine(AbstractProcess):
    """Cosine VP schedule (Nichol & Dhariwal 2021) in continuous time.

    $\\alpha(t) = \\cos(\\frac{\\pi}{2}\\frac{t+s}{1+s}) / \\cos(\\frac{\\pi}{2}\\frac{s}{1+s})$,
    $\\sigma = \\sqrt{1 - \\alpha^2}$.

    Args:
        s: the offset (default 0.008).
        t_min: default data end of grids; σ = 0 at `t_zero` = 0.
        t_max: noise end; default 0.9946 as in DPM-Solver, since λ → −∞ as t → 1.
    """

    s: float

    def __init__(self, s: float = 0.008, t_min: float = 1e-3, t_max: float = 0.9946):
        if s < 0:
            raise ValueError(f"s must be non-negative; got {s}")
        if not (0 < t_min < t_max < 1.0):
            raise ValueError(f"need 0 < t_min < t_max < 1; got {t_min}, {t_max}")
        self.s = s
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        self.t_zero = 0.0

    def _log_alpha0(self):
        return jnp.log(jnp.cos(math.pi / 2 * self.s / (1 + self.s)))

    def log_alpha(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return jnp.log(jnp.cos(math.pi / 2 * (t + self.s) / (1 + self.s))) - self._log_alpha0()

    def dlog_alpha(self, t: ArrayLike) -> Array:
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        c = math.pi / (2 * (1 + self.s))
        return -c * jnp.tan(c * (t + self.s))

    def log_sigma(self, t: ArrayLike) -> Array:
        return _log_sigma_vp(self.log_alpha(t))

    def dlog_sigma(self, t: ArrayLike) -> Array:
        la = self.log_alpha(t)
        return -jnp.exp(2 * la) * self.dlog_alpha(t) / -jnp.expm1(2 * la)

    def g2(self, t: ArrayLike) -> Array:
        return -2.0 * self.dlog_alpha(t)

    def t_of_lam(self, lam: ArrayLike) -> Array:
        la = _log_alpha_of_lam_vp(lam)
        return 2 * (1 + self.s) / math.pi * jnp.arccos(jnp.exp(la + self._log_alpha0())) - self.s
