"""DPM-Solver (Lu, Zhou, Bao, Chen, Li, Zhu 2022): single-step exponential integrators, noise form.

From s to t with $h = \\lambda_t - \\lambda_s$, $\\hat\\varepsilon_s = \\hat\\varepsilon(x_s, s)$ and the
intermediate times $s_i = t_\\lambda(\\lambda_s + r_i h)$ (monograph §9.4; paper Alg. 1 and 2, code
`singlestep_dpm_solver_{second,third}_update`), writing $\\mathrm{E}_r = \\alpha_{s_r}\\hat x_0 +
\\sigma_{s_r}\\hat\\varepsilon_s$ for the exponential-Euler point ($= \\frac{\\alpha_{s_r}}{\\alpha_s}x_s -
\\sigma_{s_r}(e^{rh}-1)\\hat\\varepsilon_s$):

* order 1 (= DDIM): $x_t = \\mathrm{E}_1$.
* order 2 (DPM-Solver-2, default $r_1 = \\tfrac12$): $u = \\mathrm{E}_{r_1}$,
  $x_t = \\mathrm{E}_1 - \\frac{\\sigma_t}{2r_1}(e^h - 1)(\\hat\\varepsilon(u, s_1) - \\hat\\varepsilon_s)$
  ("published"); the "taylor" variant weights the difference by $\\frac{\\sigma_t}{r_1 h}(e^h-1-h)$.
  With $r_1 = 1$ and "taylor" this is the exponential Heun method (ETD2RK: exponential Euler to t,
  then the trapezoidal φ₂ correction), the book's "exp-Heun = DPM-Solver-2" (§9.6).
* order 3 (DPM-Solver-3, $r_1 = \\tfrac13$, $r_2 = \\tfrac23$):
  $u_1 = \\mathrm{E}_{r_1}$,
  $u_2 = \\mathrm{E}_{r_2} - \\frac{r_2}{r_1}\\sigma_{s_2}\\big(\\frac{e^{r_2h}-1}{r_2h} - 1\\big)
  (\\hat\\varepsilon(u_1) - \\hat\\varepsilon_s)$,
  $x_t = \\mathrm{E}_1 - \\frac{\\sigma_t}{r_2}\\big(\\frac{e^h-1}{h} - 1\\big)
  (\\hat\\varepsilon(u_2) - \\hat\\varepsilon_s)$ ("published"); "taylor" forms $D_1, D_2$ from both
  differences and uses $\\sigma_t h\\varphi_2(h) D_1 + \\sigma_t h\\varphi_3(h) D_2$.

Order k costs k NFE per step. Steps with an infinite log-SNR increment (a first point with α = 0,
the step into σ = 0) are first order with 1 NFE (see `jdiff.solvers.exponential`); because the
exponential-Euler part is computed as $\\alpha_t\\hat x_0 + \\sigma_t\\hat\\varepsilon$, nothing divides by
α_s. `lower_order_final` (default True) caps the order at N − i on grids of N < 15 steps (step i,
0-based): the last step is first order and the one before at most second order, mirroring the
reference code's singlestep schedules that end in orders (…, 2, 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdiff.solvers.exponential import (
    AbstractExponentialSolver,
    exp_euler,
    lambda_step,
    noise_coeff,
)

__all__ = ["DPMSolver"]

VARIANTS = ("published", "taylor")


class DPMSolver(AbstractExponentialSolver):
    """DPM-Solver-1/2/3, single-step, noise prediction (Lu et al. 2022). Order `order`.

    Args:
        order: 1, 2 or 3 (NFE per step = order, except first-order degenerate/final steps).
        variant: `"published"` (the paper's DPM-Solver-k, code `solver_type="dpmsolver"`) or
            `"taylor"` (code `solver_type="taylor"`); both have order `order`.
        r1: the intermediate point of order 2 in λ (default ½, the "midpoint"; 1 with "taylor"
            is exponential Heun). Order 3 uses r₁ = ⅓, r₂ = ⅔.
        lower_order_final: cap the order at the number of steps left when N < 15.
        thresholding, threshold_ratio: dynamic thresholding of x̂0 (ε̂ recomputed from it).

    Shapes: `x[B, ...]`; scalar times.
    """

    solver_order: int = 3
    variant: str = "published"
    r1: float = 0.5
    lower_order_final: bool = True
    thresholding: bool = False
    threshold_ratio: float = 0.995

    def __init__(
        self,
        order: int = 3,
        variant: str = "published",
        r1: float = 0.5,
        lower_order_final: bool = True,
        thresholding: bool = False,
        threshold_ratio: float = 0.995,
    ):
        self.solver_order = order
        self.variant = variant
        self.r1 = float(r1)
        self.lower_order_final = lower_order_final
        self.thresholding = thresholding
        self.threshold_ratio = float(threshold_ratio)

    def __check_init__(self):
        self._check_common(self.solver_order, self.variant, VARIANTS)
        if not 0.0 < self.r1 <= 1.0:
            raise ValueError(f"r1 must lie in (0, 1]; got {self.r1}")

    def order(self, terms):
        return self.solver_order

    def update(self, ctx, s, t, x, history):
        p = ctx.process
        x0, eps = self.predict_x0_eps(ctx, x, s)
        lam_s, _, _, hs, degenerate = lambda_step(p, s, t)
        k = jnp.minimum(self.solver_order, self.order_cap(ctx, self.solver_order, always=False))
        k = jnp.where(degenerate, 1, k)
        sig_t = p.sigma(t)
        base = exp_euler(p, t, x0, eps)
        taylor = self.variant == "taylor"

        def point(r):
            s_r = p.t_of_lam(lam_s + r * hs)
            return s_r, exp_euler(p, s_r, x0, eps)

        def order1():
            return base, jnp.int32(1)

        def order2():
            r1 = self.r1
            s1, u = point(r1)
            d = self.predict_x0_eps(ctx, u, s1)[1] - eps
            if taylor:
                w = noise_coeff(1, hs) / (r1 * hs)
            else:
                w = noise_coeff(0, hs) / (2.0 * r1)
            return base - sig_t * w * d, jnp.int32(2)

        def order3():
            r1, r2 = 1.0 / 3.0, 2.0 / 3.0
            s1, u1 = point(r1)
            d1 = self.predict_x0_eps(ctx, u1, s1)[1] - eps
            s2, e2 = point(r2)
            u2 = e2 - p.sigma(s2) * (r2 / r1) * (noise_coeff(1, r2 * hs) / (r2 * hs)) * d1
            d2 = self.predict_x0_eps(ctx, u2, s2)[1] - eps
            if taylor:
                D1_0, D1_1 = d1 / r1, d2 / r2
                D1 = (r2 * D1_0 - r1 * D1_1) / (r2 - r1)
                D2 = 2.0 * (D1_1 - D1_0) / (r2 - r1)
                corr = noise_coeff(1, hs) / hs * D1 + noise_coeff(2, hs) / hs**2 * D2
            else:
                corr = noise_coeff(1, hs) / (r2 * hs) * d2
            return base - sig_t * corr, jnp.int32(3)

        branches = [order1, order2, order3][: self.solver_order]
        x_t, nfe = jax.lax.switch(jnp.clip(k - 1, 0, self.solver_order - 1), branches)
        return x_t, history, nfe
