"""DEIS (Zhang & Chen 2023): ρAB-DEIS, Adams–Bashforth in ρ = σ/α on the noise prediction.

With $\\rho = \\sigma/\\alpha = e^{-\\lambda}$ and $y = x/\\alpha$ the PF-ODE is $dy/d\\rho = \\hat\\varepsilon$
(monograph §9.3). ρAB-DEIS interpolates $\\hat\\varepsilon$ through the current and previous grid
points by the Lagrange polynomial in ρ and integrates it exactly:

$$x_t = \\alpha_t\\Big(\\frac{x_s}{\\alpha_s} + \\sum_{j=0}^{q-1} C_j\\,\\hat\\varepsilon_j\\Big),\\qquad
C_j = \\int_{\\rho_s}^{\\rho_t}\\ell_j(\\rho)\\,d\\rho,\\qquad
\\ell_j(\\rho) = \\prod_{k\\ne j}\\frac{\\rho - \\rho_k}{\\rho_j - \\rho_k},$$

with node 0 the current point s and nodes 1, 2 the previous ones. The polynomials integrate in
closed form: with $u = \\rho - \\rho_s$, nodes $u_j = \\rho_j - \\rho_s$ and $H = \\rho_t - \\rho_s$,
$\\int_0^H u\\,du = H^2/2$ and $\\int_0^H u(u - a)\\,du = H^3/3 - aH^2/2$. Since $\\sum_j C_j = H$ the
update is computed as
$x_t = \\alpha_t\\hat x_0 + \\sigma_t\\hat\\varepsilon_0 + \\alpha_t\\sum_{j\\ge1}C_j(\\hat\\varepsilon_j - \\hat\\varepsilon_0)$,
which divides by neither α_s nor σ_s.

`DEIS(order=q)` uses q points and has global order q: q = 1 is DDIM (the paper's "DEIS-0"/ρAB-0),
q = 2 and 3 are ρAB-DEIS-1 and -2 (diffusers' `solver_order`). Warm-up: step i uses
$\\min(q, n + 1)$ points with n the valid history length (= i on ordinary grids); with
`lower_order_final` the order is capped at N − i when N < 15 (diffusers' DEIS scheduler). Steps
with an infinite log-SNR increment (α_s = 0, σ_t = 0) are first order; into σ = 0 the update
returns $\\alpha_t\\hat x_0$. 1 NFE per step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdiff.solvers.exponential import (
    AbstractExponentialSolver,
    exp_euler,
    history_ratios,
    init_multistep_history,
    lambda_step,
    push_history,
)

__all__ = ["DEIS"]


class DEIS(AbstractExponentialSolver):
    """ρAB-DEIS multistep solver with `order` Adams–Bashforth points in ρ = σ/α.

    Args:
        order: number of points q ∈ {1, 2, 3} (global order q; q = 1 is DDIM).
        lower_order_final: cap the order at the steps left when N < 15.
        thresholding, threshold_ratio: dynamic thresholding of x̂0 (ε̂ recomputed from it).

    Shapes: `x[B, ...]`; scalar times. History: `MultistepHistory` with `[max(q−1, 1), B, ...]`
    previous ε̂ and their λ (ρ = e^{−λ}).
    """

    solver_order: int = 2
    lower_order_final: bool = True
    thresholding: bool = False
    threshold_ratio: float = 0.995

    def __init__(
        self,
        order: int = 2,
        lower_order_final: bool = True,
        thresholding: bool = False,
        threshold_ratio: float = 0.995,
    ):
        self.solver_order = order
        self.lower_order_final = lower_order_final
        self.thresholding = thresholding
        self.threshold_ratio = float(threshold_ratio)

    def __check_init__(self):
        self._check_common(self.solver_order)

    def order(self, terms):
        return self.solver_order

    def init_history(self, model, x):
        return init_multistep_history(x, self.solver_order - 1)

    def update(self, ctx, s, t, x, hist):
        p = ctx.process
        x0, eps = self.predict_x0_eps(ctx, x, s)
        lam_s, _, _, hs, degenerate = lambda_step(p, s, t)
        k = jnp.minimum(self.order_cap(ctx, self.solver_order, always=False), hist.count + 1)
        k = jnp.where(degenerate, 1, k)
        base = exp_euler(p, t, x0, eps)
        n = hist.preds.shape[0]
        r = history_ratios(hist, lam_s, hs, n)  # (λ_j − λ_s)/h < 0
        # ρ in units of ρ_s: v_j = ρ_j/ρ_s − 1 = e^{−r_j h} − 1 > 0, V = ρ_t/ρ_s − 1 ∈ (−1, 0)
        v = jnp.expm1(-r * hs)
        big_v = jnp.expm1(-hs)
        # α_t ρ_s = α_t e^{−λ_s}; λ_s is finite whenever the step is not degenerate
        scale = p.alpha(t) * jnp.exp(-jnp.where(degenerate, 0.0, lam_s))
        d = [hist.preds[j] - eps for j in range(n)]

        def order1():
            return base

        def order2():
            c1 = big_v**2 / (2.0 * v[0])
            return base + scale * c1 * d[0]

        def order3():
            v1, v2 = v[0], v[1]
            c1 = (big_v**3 / 3.0 - v2 * big_v**2 / 2.0) / (v1 * (v1 - v2))
            c2 = (big_v**3 / 3.0 - v1 * big_v**2 / 2.0) / (v2 * (v2 - v1))
            return base + scale * (c1 * d[0] + c2 * d[1])

        branches = [order1, order2, order3][: self.solver_order]
        x_t = jax.lax.switch(jnp.clip(k - 1, 0, self.solver_order - 1), branches)
        return x_t, push_history(hist, eps, lam_s), jnp.int32(1)
