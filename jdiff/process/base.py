"""The forward-process contract: $x_t = \\alpha(t) x_0 + \\sigma(t) \\varepsilon$.

Every process in jdiff is an immutable pytree (an `equinox.Module`) describing a Gaussian
perturbation kernel $p_t(x_t \\mid x_0) = \\mathcal N(\\alpha_t x_0, \\sigma_t^2 I)$ and its
equivalent linear SDE $dx = f(t) x\\,dt + g(t)\\,dW$ with

$$f = \\alpha'/\\alpha, \\qquad g^2 = (\\sigma^2)' - 2 f \\sigma^2 = -2\\sigma^2\\,\\lambda'(t),$$

where $\\lambda(t) = \\log\\alpha(t) - \\log\\sigma(t)$ is the half log-SNR (DPM-Solver convention).

Time runs from data at `t_min` (≈ 0) to noise at `t_max`; samplers integrate from `t_max` down to
`t_min`. Processes whose σ vanishes at some time (VP at t = 0, Linear at t = 0, EDM at σ = 0, …)
declare it as `t_zero`; a sampling grid may end exactly there (DESIGN §2).

Reference: Lai, Song, Kim, Mitsufuji, Ermon, "The Principles of Diffusion Models" (2025), ch. 4 and 6;
Song et al., "Score-Based Generative Modeling through SDEs" (ICLR 2021).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

__all__ = ["AbstractProcess", "broadcast_to_batch"]


def broadcast_to_batch(a: ArrayLike, x: Array) -> Array:
    """Reshape per-example coefficients `a` (scalar or `[B]`) to broadcast against `x[B, ...]`."""
    a = jnp.asarray(a)
    if a.ndim == 0:
        return a
    if a.ndim != 1:
        raise ValueError(f"time-like coefficients must be a scalar or [B]; got shape {a.shape}")
    return a.reshape(a.shape + (1,) * (x.ndim - 1))


class AbstractProcess(eqx.Module):
    """A Gaussian forward process (a diffusion schedule or a flow-matching path).

    Subclasses implement `log_alpha`, `log_sigma` and `t_of_lam` in closed form, and may override
    the derivatives `dlog_alpha`, `dlog_sigma` (defaults use `jax.jvp`).

    All time-dependent methods take `t` as a scalar or an array of any shape and act elementwise.

    Attributes:
        t_min: the data end of the default sampling interval (σ > 0 there).
        t_max: the noise end, where the prior is placed.
        t_zero: the time where σ = 0 if the process reaches it (a grid may end there), else None.
    """

    t_min: float = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    t_zero: float | None = eqx.field(static=True)

    # --- closed forms -------------------------------------------------------------------------
    @abc.abstractmethod
    def log_alpha(self, t: ArrayLike) -> Array:
        """$\\log \\alpha(t)$, elementwise."""

    @abc.abstractmethod
    def log_sigma(self, t: ArrayLike) -> Array:
        """$\\log \\sigma(t)$, elementwise (−inf where σ = 0)."""

    @abc.abstractmethod
    def t_of_lam(self, lam: ArrayLike) -> Array:
        """Inverse of `lam`: the time with half log-SNR `lam`, elementwise."""

    # --- derived quantities -------------------------------------------------------------------
    def alpha(self, t: ArrayLike) -> Array:
        """Signal scale $\\alpha(t)$."""
        return jnp.exp(self.log_alpha(t))

    def sigma(self, t: ArrayLike) -> Array:
        """Noise scale $\\sigma(t)$."""
        return jnp.exp(self.log_sigma(t))

    def dlog_alpha(self, t: ArrayLike) -> Array:
        """$\\frac{d}{dt}\\log\\alpha(t) = f(t)$."""
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return jax.jvp(self.log_alpha, (t,), (jnp.ones_like(t),))[1]

    def dlog_sigma(self, t: ArrayLike) -> Array:
        """$\\frac{d}{dt}\\log\\sigma(t) = \\sigma'/\\sigma$."""
        t = jnp.asarray(t, dtype=jnp.result_type(float))
        return jax.jvp(self.log_sigma, (t,), (jnp.ones_like(t),))[1]

    def dalpha(self, t: ArrayLike) -> Array:
        """$\\alpha'(t)$."""
        return self.alpha(t) * self.dlog_alpha(t)

    def dsigma(self, t: ArrayLike) -> Array:
        """$\\sigma'(t)$."""
        return self.sigma(t) * self.dlog_sigma(t)

    def lam(self, t: ArrayLike) -> Array:
        """Half log-SNR $\\lambda(t) = \\log\\alpha(t) - \\log\\sigma(t)$ (decreasing in t)."""
        return self.log_alpha(t) - self.log_sigma(t)

    def dlam(self, t: ArrayLike) -> Array:
        """$\\lambda'(t) = f(t) - \\sigma'/\\sigma$ (negative)."""
        return self.dlog_alpha(t) - self.dlog_sigma(t)

    def f(self, t: ArrayLike) -> Array:
        """SDE drift coefficient $f(t) = \\alpha'/\\alpha$."""
        return self.dlog_alpha(t)

    def g2(self, t: ArrayLike) -> Array:
        """Squared SDE diffusion $g^2(t) = (\\sigma^2)' - 2 f \\sigma^2 = -2\\sigma^2\\lambda'(t)$."""
        return -2.0 * self.sigma(t) ** 2 * self.dlam(t)

    # --- prior and perturbation ---------------------------------------------------------------
    def prior_std(self) -> Array:
        """Standard deviation of the prior $\\mathcal N(0, \\sigma(t_{max})^2 I)$."""
        return self.sigma(jnp.asarray(self.t_max))

    def prior_sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype=None) -> Array:
        """Draw `shape` from the prior $\\mathcal N(0, \\sigma(t_{max})^2 I)$ (`shape[0]` = batch)."""
        dtype = dtype or jnp.result_type(float)
        return self.prior_std().astype(dtype) * jax.random.normal(key, shape, dtype)

    def prior_logp(self, x: Array) -> Array:
        """Log-density of the prior at `x[B, ...]`, summed over non-batch axes → `[B]`."""
        std = self.prior_std()
        d = math.prod(x.shape[1:])
        sq = jnp.sum(jnp.reshape(x, (x.shape[0], -1)) ** 2, axis=-1)
        return -0.5 * sq / std**2 - d * (jnp.log(std) + 0.5 * math.log(2 * math.pi))

    def perturb(self, key: PRNGKeyArray, x0: Array, t: ArrayLike) -> tuple[Array, Array]:
        """Sample $x_t = \\alpha_t x_0 + \\sigma_t\\varepsilon$.

        Args:
            key: PRNG key.
            x0: clean data `[B, ...]`.
            t: times, scalar or `[B]`.

        Returns:
            `(x_t, eps)`, both shaped like `x0`.
        """
        eps = jax.random.normal(key, x0.shape, x0.dtype)
        a = broadcast_to_batch(self.alpha(t), x0)
        s = broadcast_to_batch(self.sigma(t), x0)
        return a * x0 + s * eps, eps

    def check_times(self, ts: ArrayLike) -> None:
        """Raise `ValueError` if concrete times leave `[t_lo, t_max]` (no-op for traced `ts`)."""
        try:
            ts = jnp.asarray(ts)
            lo = float(jnp.min(ts))
            hi = float(jnp.max(ts))
        except jax.errors.ConcretizationTypeError:
            return
        t_lo = self.t_min if self.t_zero is None else min(self.t_min, self.t_zero)
        tol = 1e-6 * max(1.0, abs(self.t_max))
        if lo < t_lo - tol or hi > self.t_max + tol:
            raise ValueError(
                f"times must lie in the domain of {type(self).__name__}: "
                f"[{t_lo}, {self.t_max}]; got [{lo}, {hi}]"
            )
