"""DDIM (Song, Meng, Ermon 2021) with its η-family; η = 1 is the DDPM ancestral step.

From s (noisier) to t (cleaner), with $(\\hat x_0, \\hat\\varepsilon)$ predicted at $(x_s, s)$ and
$h = \\lambda_t - \\lambda_s$:

$$x_t = \\alpha_t\\hat x_0 + \\sqrt{\\sigma_t^2 - c^2}\\,\\hat\\varepsilon + c\\,z, \\qquad
c = \\eta\\,\\frac{\\sigma_t}{\\sigma_s}\\sqrt{\\sigma_s^2 - \\frac{\\alpha_s^2}{\\alpha_t^2}\\sigma_t^2}
  = \\eta\\,\\sigma_t\\sqrt{1 - e^{-2h}}.$$

η = 0 is deterministic DDIM, i.e. exponential Euler / DPM-Solver-1 (monograph §9.2); η = 1 gives
the DDPM posterior $q(x_t \\mid x_s, \\hat x_0)$ standard deviation (Ho et al. 2020). Into σ_t = 0
the update returns $\\alpha_t \\hat x_0$.
"""

from __future__ import annotations

import jax.numpy as jnp

from jdiff.process.base import broadcast_to_batch
from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = ["DDIM"]


class DDIM(AbstractDiffusionSolver):
    """DDIM sampler with stochasticity η ≥ 0 (η = 0 deterministic, η = 1 DDPM ancestral).

    Args:
        eta: the η of Song et al. (2021). Order 1; 1 NFE/step. For η > 0 the noise is
            $c\\,\\Delta W/\\sqrt{s-t}$ with ΔW the step's Brownian increment (shared path with
            `brownian="tree"`), a first-order exponential scheme for a reverse SDE with additive
            noise: strong order 1 (η = 1 is SDE-DPM-Solver++1, `jdiff.solvers.sde_dpm`).
    """

    eta: float = 0.0

    def __check_init__(self):
        if not self.eta >= 0:
            raise ValueError(f"eta must be >= 0; got {self.eta}")

    @property
    def stochastic(self):  # type: ignore[override]
        return self.eta > 0

    def order(self, terms):
        return 1

    def strong_order(self, terms):
        return 1.0 if self.eta > 0 else None

    def update(self, ctx, s, t, x, history):
        p = ctx.process
        x0, eps = ctx.x0_eps(x, s)
        a_t, s_t = p.alpha(t), p.sigma(t)
        x_t = broadcast_to_batch(a_t, x) * x0
        if self.eta == 0:
            return x_t + broadcast_to_batch(s_t, x) * eps, history, 1
        h = p.lam(t) - p.lam(s)
        frac = -jnp.expm1(-2.0 * h)  # 1 − e^{−2h} ∈ [0, 1]; 1 when σ_t = 0
        c = self.eta * s_t * jnp.sqrt(frac)
        keep = s_t * jnp.sqrt(jnp.maximum(1.0 - self.eta**2 * frac, 0.0))
        z = ctx.brownian_normal(s, t, x)  # ΔW/√(s − t): follows a shared Brownian path if any
        x_t = x_t + broadcast_to_batch(keep, x) * eps + broadcast_to_batch(c, x) * z
        return x_t, history, 1
