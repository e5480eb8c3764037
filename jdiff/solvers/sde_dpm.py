"""SDE-DPM-Solver++ (Lu et al. 2022b, "DPM-Solver++"): exponential integrators for the reverse SDE.

In data-prediction form the reverse SDE $dx = [f x - g^2\\nabla\\log p_t]dt + g\\,d\\bar W$ with
$\\nabla\\log p_t = -(x - \\alpha\\hat x_0)/\\sigma^2$ is linear in x plus a term in $\\hat x_0$:
$dx = [(f - 2\\lambda')x + 2\\lambda'\\alpha\\hat x_0]dt + g\\,d\\bar W$. Integrating the linear part
exactly from s to t < s with $h = \\lambda_t - \\lambda_s$ gives

$$x_t = \\frac{\\sigma_t}{\\sigma_s}e^{-h}x_s + \\alpha_t\\int_{\\lambda_s}^{\\lambda_t}
  2e^{-2(\\lambda_t-\\lambda)}\\hat x_0\\,d\\lambda + \\sigma_t\\sqrt{1 - e^{-2h}}\\,z.$$

* Order 1 (SDE-DPM-Solver++1): $\\hat x_0$ constant,
  $x_t = \\tfrac{\\sigma_t}{\\sigma_s}e^{-h}x_s + \\alpha_t(1-e^{-2h})\\hat x_0(x_s, s)
  + \\sigma_t\\sqrt{1-e^{-2h}}\\,z$ — identical to DDPM ancestral sampling and DDIM η = 1.
* Order 2 (SDE-DPM-Solver++(2M)): with the previous step's $\\hat x_0$, $h_0 = \\lambda_s -
  \\lambda_{prev}$, $r_0 = h_0/h$, $D_1 = (\\hat x_0^{(s)} - \\hat x_0^{(prev)})/r_0$, add
  $\\alpha_t\\,c(h)\\,D_1$ with $c = \\tfrac12(1 - e^{-2h})$ (`variant="midpoint"`, the default
  of the published implementation) or $c = 1 - \\tfrac{1-e^{-2h}}{2h}$ (`variant="taylor"`, the
  exact integral of $\\hat x_0$ linear in λ). The first step is first order, the step into
  σ = 0 is first order (it returns $\\alpha_t\\hat x_0$), and with `lower_order_final` the last
  step of a grid with fewer than 15 steps is first order (the published rule).

z is $\\Delta W/\\sqrt{s-t}$, the step's Brownian increment, so a shared path
(`jdiff.solve(..., brownian="tree")`) drives every grid with the same Brownian motion.

Declared orders (honest): the noise of the reverse SDE is additive, and matching the variance of
the exact stochastic integral with one increment per step leaves an $O(h^{3/2})$ local error, so
both variants converge strongly (and weakly) with order 1; the 2M term only makes the drift
second order, which pays off when the drift error dominates (few steps, small noise).
tests/test_solvers_stochastic.py measures the strong order of both.
"""

from __future__ import annotations

import jax.numpy as jnp

from jdiff.process.base import broadcast_to_batch
from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = ["SDEDPMSolverPP"]

_VARIANTS = ("midpoint", "taylor")
_LOWER_ORDER_FINAL_BELOW = 15  # published rule: last step first order when N < 15


class SDEDPMSolverPP(AbstractDiffusionSolver):
    """SDE-DPM-Solver++1 (`order=1`) and SDE-DPM-Solver++(2M) (`order=2`), Lu et al. 2022b.

    Args:
        order: 1 or 2 (multistep, one NFE per step).
        variant: `"midpoint"` (default; the published 2M coefficient ½(1 − e^{−2h})) or
            `"taylor"` (1 − (1 − e^{−2h})/(2h)); see the module docstring.
        lower_order_final: first-order last step when the grid has fewer than 15 steps.

    Order 1 (weak and strong, additive noise); 1 NFE/step. History: the previous step's
    $\\hat x_0$ `[B, ...]` and λ (scalar).
    """

    solver_order: int = 1
    variant: str = "midpoint"
    lower_order_final: bool = True
    stochastic = True

    def __init__(self, order: int = 1, variant: str = "midpoint", lower_order_final: bool = True):
        if order not in (1, 2):
            raise ValueError(f"SDEDPMSolverPP order must be 1 or 2; got {order!r}")
        if variant not in _VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid choices: {list(_VARIANTS)}")
        self.solver_order = int(order)
        self.variant = variant
        self.lower_order_final = bool(lower_order_final)

    def order(self, terms):
        return 1

    def strong_order(self, terms):
        return 1.0

    def init_history(self, model, x):
        if self.solver_order == 1:
            return None
        return (jnp.zeros_like(x), jnp.zeros((), x.dtype))

    def update(self, ctx, s, t, x, history):
        p = ctx.process
        x0 = ctx.predict("x0", x, s)
        lam_s, lam_t = p.lam(s), p.lam(t)
        h = lam_t - lam_s
        one_m = -jnp.expm1(-2.0 * h)  # 1 − e^{−2h}; 1 when σ_t = 0
        s_s, s_t, a_t = p.sigma(s), p.sigma(t), p.alpha(t)
        c_x = s_t / s_s * jnp.exp(-h)
        noise = broadcast_to_batch(s_t * jnp.sqrt(one_m), x) * ctx.brownian_normal(s, t, x)
        x_t = broadcast_to_batch(c_x, x) * x + broadcast_to_batch(a_t * one_m, x) * x0 + noise
        if self.solver_order == 1:
            return x_t, history, 1
        x0_prev, lam_prev = history
        second = (ctx.step > 0) & ~ctx.sigma_is_zero(t)
        if self.lower_order_final and ctx.num_steps < _LOWER_ORDER_FINAL_BELOW:
            second = second & (ctx.steps_left > 1)
        # substitute harmless values where the second-order term is not used (no inf·0)
        h_safe = jnp.where(second, h, 1.0)
        h0_safe = jnp.where(second, lam_s - lam_prev, 1.0)
        d1 = (x0 - x0_prev) * broadcast_to_batch(h_safe / h0_safe, x)
        one_m_safe = -jnp.expm1(-2.0 * h_safe)
        if self.variant == "midpoint":
            c = 0.5 * one_m_safe
        else:
            c = 1.0 - one_m_safe / (2.0 * h_safe)
        x_t = x_t + broadcast_to_batch(jnp.where(second, a_t * c, 0.0), x) * d1
        return x_t, (x0, lam_s.astype(x.dtype)), 1
