"""DDPM ancestral sampling (Ho, Jain, Abbeel 2020) between any two times of any process.

The step from s (noisier) to t (cleaner) draws from the forward process's posterior
$q(x_t \\mid x_s, x_0)$ with $x_0$ replaced by the model's $\\hat x_0(x_s, s)$. With the
transition $q(x_s \\mid x_t) = \\mathcal N(\\alpha_{s|t} x_t, \\sigma_{s|t}^2 I)$,
$\\alpha_{s|t} = \\alpha_s/\\alpha_t$, $\\sigma_{s|t}^2 = \\sigma_s^2 - \\alpha_{s|t}^2\\sigma_t^2$
(the Gaussian posterior of Kingma et al. 2021, VDM):

$$\\mu = \\frac{\\alpha_{s|t}\\sigma_t^2}{\\sigma_s^2}\\,x_s
  + \\frac{\\alpha_t\\sigma_{s|t}^2}{\\sigma_s^2}\\,\\hat x_0,
  \\qquad \\operatorname{Var} = \\frac{\\sigma_{s|t}^2\\,\\sigma_t^2}{\\sigma_s^2}.$$

For a discrete schedule and consecutive steps this is Ho et al.'s eqs. 6–7 (with
$\\tilde\\beta_t$ variance). In log-SNR ($h = \\lambda_t - \\lambda_s$) the update is
$x_t = \\tfrac{\\sigma_t}{\\sigma_s}e^{-h}x_s + \\alpha_t(1 - e^{-2h})\\hat x_0 +
\\sigma_t\\sqrt{1 - e^{-2h}}\\,z$: DDIM with η = 1 and SDE-DPM-Solver++1, a first-order
exponential scheme for the reverse SDE (strong order 1: the noise is additive). Into σ_t = 0
the variance vanishes and the step returns $\\alpha_t\\hat x_0$.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.process.base import AbstractProcess, broadcast_to_batch
from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = ["Ancestral"]


class Ancestral(AbstractDiffusionSolver):
    """DDPM ancestral sampler: $x_t \\sim q(x_t \\mid x_s, \\hat x_0(x_s, s))$ (Ho et al. 2020).

    Order 1 (weak), strong order 1 with a shared Brownian path (`z = ΔW/√(s − t)`); 1 NFE/step.
    Equals `DDIM(eta=1)` (same key, same noise) and `SDEDPMSolverPP(order=1)`.
    """

    stochastic = True

    def order(self, terms):
        return 1

    def strong_order(self, terms):
        return 1.0

    @staticmethod
    def posterior(
        process: AbstractProcess, s: ArrayLike, t: ArrayLike, x_s: Array, x0: Array
    ) -> tuple[Array, Array]:
        """Mean and variance of $q(x_t \\mid x_s, x_0)$ for t < s.

        Args:
            process: the forward process.
            s, t: the noisier and the cleaner time (scalars or `[B]`).
            x_s: `[B, ...]` state at time s.
            x0: `[B, ...]` (predicted) clean data.

        Returns:
            `(mean [B, ...], var)` with `var` broadcastable against `x_s` (scalar or `[B, 1...]`).
        """
        a_s, a_t = process.alpha(s), process.alpha(t)
        sg_s, sg_t = process.sigma(s), process.sigma(t)
        h = process.lam(t) - process.lam(s)
        a_st = a_s / a_t
        # σ²_{s|t} = σ_s² − α_{s|t}² σ_t² = σ_s² (1 − e^{−2h}), computed without cancellation
        var_st = sg_s**2 * -jnp.expm1(-2.0 * h)
        c_x = a_st * sg_t**2 / sg_s**2
        c_0 = a_t * var_st / sg_s**2
        var = var_st * sg_t**2 / sg_s**2
        mean = broadcast_to_batch(c_x, x_s) * x_s + broadcast_to_batch(c_0, x_s) * x0
        return mean, broadcast_to_batch(var, x_s)

    def update(self, ctx, s, t, x, history):
        x0 = ctx.predict("x0", x, s)
        mean, var = self.posterior(ctx.process, s, t, x, x0)
        return mean + jnp.sqrt(var) * ctx.brownian_normal(s, t, x), history, 1
