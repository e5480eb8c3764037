"""EDM samplers (Karras, Aittala, Aila, Laine 2022): Heun in σ̄ (Alg. 1) and with churn (Alg. 2).

For any process, the scaled state $\\bar x = x/\\alpha$ and the noise-to-signal ratio
$\\bar\\sigma = \\sigma/\\alpha = e^{-\\lambda}$ turn the probability-flow ODE into EDM's form

$$\\frac{d\\bar x}{d\\bar\\sigma} = \\hat\\varepsilon(\\alpha\\bar x, t(\\bar\\sigma))
  = \\frac{\\bar x - \\hat x_0}{\\bar\\sigma}$$

(Karras et al. 2022, eq. 4 with $s(t) = \\alpha$, $\\sigma(t) = \\bar\\sigma$; monograph §9.6). The
samplers step in $(\\bar x, \\bar\\sigma)$ and map back with $x = \\alpha_t\\bar x$. On the EDM
process (α = 1, σ = t) this is Heun in σ = t, i.e. `jdiff.solvers.Heun()` exactly.

Requirements: α > 0 on the grid (Linear and Trig reach α = 0 at t = 1: start the grid slightly
below, e.g. `Linear(t_max=0.999)` or `t_start=1 - 1e-3`). The step into σ = 0 is the Euler step
$\\bar x_t = \\bar x_s - \\bar\\sigma_s\\hat\\varepsilon_s = \\hat x_0$, so the network is never
evaluated at σ = 0 (EDM's reference code does the same).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jdiff.process.base import broadcast_to_batch
from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = ["EDMHeun", "EDMStochastic"]


def _sigma_bar(process, t):
    """$\\bar\\sigma(t) = \\sigma/\\alpha = e^{-\\lambda(t)}$ (0 where σ = 0)."""
    return jnp.exp(-process.lam(t))


def _heun_sigma_bar(ctx, t_from, sb_from, xb, t_to):
    """One EDM step in $(\\bar x, \\bar\\sigma)$ from `(t_from, sb_from, xb)` to time `t_to`.

    Euler $\\bar x' = \\bar x + (\\bar\\sigma_{to} - \\bar\\sigma_{from})\\,d$ with
    $d = \\hat\\varepsilon(\\alpha_{from}\\bar x, t_{from})$, then the trapezoidal correction
    unless σ(t_to) = 0. Returns `(x_to, nfe)` with `x_to = α(t_to) x̄_to`.
    """
    p = ctx.process
    a_from = broadcast_to_batch(p.alpha(t_from), xb)
    a_to = broadcast_to_batch(p.alpha(t_to), xb)
    dsb = broadcast_to_batch(_sigma_bar(p, t_to) - sb_from, xb)
    d = ctx.predict("eps", a_from * xb, t_from)
    xb_euler = xb + dsb * d

    def corrected(_):
        d2 = ctx.predict("eps", a_to * xb_euler, t_to)
        return a_to * (xb + 0.5 * dsb * (d + d2)), jnp.int32(2)

    def euler(_):
        return a_to * xb_euler, jnp.int32(1)

    return jax.lax.cond(ctx.sigma_is_zero(t_to), euler, corrected, None)


class EDMHeun(AbstractDiffusionSolver):
    """Karras et al. (2022) Algorithm 1: Heun's method in $(\\bar x, \\bar\\sigma)$ = (x/α, σ/α).

    From s to t: $d_s = \\hat\\varepsilon(x_s, s)$, $\\bar x' = \\bar x_s + (\\bar\\sigma_t -
    \\bar\\sigma_s) d_s$; if σ_t > 0, $\\bar x_t = \\bar x_s + \\tfrac12(\\bar\\sigma_t -
    \\bar\\sigma_s)(d_s + \\hat\\varepsilon(\\alpha_t\\bar x', t))$, else $\\bar x_t = \\bar x'$;
    $x_t = \\alpha_t\\bar x_t$. Order 2; 2 NFE/step, 1 into σ = 0. Needs α > 0 on the grid.
    Pair it with `jdiff.timesteps.karras` (uniform in $\\bar\\sigma^{1/7}$) as EDM does.
    """

    def order(self, terms):
        return 2

    def update(self, ctx, s, t, x, history):
        p = ctx.process
        xb = x / broadcast_to_batch(p.alpha(s), x)
        x_t, nfe = _heun_sigma_bar(ctx, s, _sigma_bar(p, s), xb, t)
        return x_t, history, nfe


class EDMStochastic(AbstractDiffusionSolver):
    """Karras et al. (2022) Algorithm 2: EDM's stochastic sampler ("churn"), for any process.

    At a step from s to t, in $\\bar\\sigma = \\sigma/\\alpha$ and $\\bar x = x/\\alpha$:

    1. $\\gamma = \\min(S_{churn}/N, \\sqrt2 - 1)$ if $S_{tmin} \\le \\bar\\sigma_s \\le S_{tmax}$,
       else 0 (N = number of grid steps);
    2. $\\hat{\\bar\\sigma} = \\bar\\sigma_s(1+\\gamma)$, at time
       $\\hat t = t(\\lambda = -\\log\\hat{\\bar\\sigma})$;
       $\\hat{\\bar x} = \\bar x_s
       + \\sqrt{\\hat{\\bar\\sigma}^2 - \\bar\\sigma_s^2}\\,S_{noise}\\,z$;
    3. the `EDMHeun` step from $(\\hat t, \\hat{\\bar\\sigma}, \\hat{\\bar x})$ to t
       (Euler into σ = 0).

    Domain clipping (a jdiff choice): $\\hat t$ may not exceed the process's `t_max` (where a
    model is defined), so $\\hat{\\bar\\sigma}$ is clipped to $\\bar\\sigma(t_{max})$ and the added
    noise is reduced to match. On the EDM process with the default `S_tmax = inf` this only
    touches the first step of a grid that starts at `t_max` (EDM's code lets σ̂ exceed σ_max
    there); set `s_tmax` below σ̄(t_max) to avoid churning the first step altogether.

    Args:
        s_churn: total churn $S_{churn} \\ge 0$ (0: deterministic, identical to `EDMHeun`).
        s_tmin, s_tmax: the $\\bar\\sigma$ range where churn is applied.
        s_noise: noise inflation $S_{noise}$ (1.003 in EDM's ImageNet setting).

    Order 2 with `s_churn = 0` (it is `EDMHeun`); with churn it is a sampler for EDM's family of
    SDEs (their eq. 6) whose per-step noise is not a Brownian increment, so it declares no strong
    order. 2 NFE/step, 1 into σ = 0. The churn noise is per-step `fold_in` noise.
    """

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0

    def __check_init__(self):
        if not self.s_churn >= 0:
            raise ValueError(f"s_churn must be >= 0; got {self.s_churn}")
        if not 0 <= self.s_tmin <= self.s_tmax:
            raise ValueError(f"need 0 <= s_tmin <= s_tmax; got {self.s_tmin}, {self.s_tmax}")
        if not self.s_noise >= 0:
            raise ValueError(f"s_noise must be >= 0; got {self.s_noise}")

    @property
    def stochastic(self):  # type: ignore[override]
        return self.s_churn > 0

    def order(self, terms):
        return 2

    def strong_order(self, terms):
        return None

    def update(self, ctx, s, t, x, history):
        p = ctx.process
        xb = x / broadcast_to_batch(p.alpha(s), x)
        sb_s = _sigma_bar(p, s)
        if self.s_churn == 0:
            x_t, nfe = _heun_sigma_bar(ctx, s, sb_s, xb, t)
            return x_t, history, nfe
        gamma = min(self.s_churn / ctx.num_steps, math.sqrt(2.0) - 1.0)
        churn = (sb_s >= self.s_tmin) & (sb_s <= self.s_tmax)
        t_max = jnp.asarray(p.t_max, sb_s.dtype)
        sb_target = jnp.minimum(sb_s * (1.0 + gamma), _sigma_bar(p, t_max))
        t_hat = jnp.clip(p.t_of_lam(-jnp.log(sb_target)), s, t_max)
        t_hat = jnp.where(churn, t_hat, s)
        sb_hat = jnp.where(churn, _sigma_bar(p, t_hat), sb_s)
        amount = self.s_noise * jnp.sqrt(jnp.maximum(sb_hat**2 - sb_s**2, 0.0))
        xb_hat = xb + broadcast_to_batch(amount, x) * ctx.normal(x, 0)
        x_t, nfe = _heun_sigma_bar(ctx, t_hat, sb_hat, xb_hat, t)
        return x_t, history, nfe
