"""DPM-Solver++ (Lu, Zhou, Bao, Chen, Li, Zhu 2022b): exponential integrators in the data form.

With $h = \\lambda_t - \\lambda_s$, $m_0 = \\hat x_0(x_s, s)$ and the exponential-Euler point
$\\mathrm{E} = \\alpha_t m_0 + \\sigma_t\\hat\\varepsilon_s = \\frac{\\sigma_t}{\\sigma_s}x_s +
\\alpha_t(1-e^{-h})m_0$ (monograph §9.5), and the data-form weights (`exponential.data_coeff`)
$c_0 = 1 - e^{-h}$, $c_1/h = h\\varphi_2(-h)$, $c_2/h^2 = h\\varphi_3(-h)$:

**Single step** (`multistep=False`; paper Alg. 1 = 2S, code `singlestep_dpm_solver_*_update`):
2S: $u = \\sigma_{s_1}/\\sigma_s\\,x_s + \\alpha_{s_1}(1-e^{-r_1h})m_0$ at $\\lambda_{s_1} = \\lambda_s + r_1h$
($r_1 = \\tfrac12$), $x_t = \\mathrm{E} + \\frac{\\alpha_t c_0}{2r_1}(\\hat x_0(u, s_1) - m_0)$
("published"; "taylor": $\\frac{\\alpha_t c_1}{r_1 h}$). 3S ($r_1 = \\tfrac13$, $r_2 = \\tfrac23$): the data-form
mirror of DPM-Solver-3, $x_t = \\mathrm{E} + \\frac{\\alpha_t c_1}{r_2 h}(\\hat x_0(u_2) - m_0)$.

**Multistep** (default; paper Alg. 2 = 2M, code `multistep_dpm_solver_{second,third}_update`), with
the previous predictions $m_1, m_2$ at $\\lambda_1 > \\lambda_2$ (older), $h_0 = \\lambda_s - \\lambda_1$,
$h_1 = \\lambda_1 - \\lambda_2$, $r_0 = h_0/h$, $r_1 = h_1/h$, $D_{1,0} = (m_0 - m_1)/r_0$,
$D_{1,1} = (m_1 - m_2)/r_1$:

* 2M: $x_t = \\mathrm{E} + \\tfrac12\\alpha_t c_0 D_{1,0}$ ("published", i.e.
  $D = (1 + \\tfrac{1}{2r_0})m_0 - \\tfrac{1}{2r_0}m_1$); "taylor": $\\mathrm{E} + \\alpha_t\\frac{c_1}{h}D_{1,0}$.
* 3M: $D_1 = D_{1,0} + \\frac{r_0}{r_0+r_1}(D_{1,0} - D_{1,1})$,
  $D_2 = \\frac{\\kappa}{r_0+r_1}(D_{1,0} - D_{1,1})$,
  $x_t = \\mathrm{E} + \\alpha_t\\frac{c_1}{h}D_1 + \\alpha_t\\frac{c_2}{h^2}D_2$.

**The 3M coefficient.** The Taylor expansion of $\\hat x_0$ in λ about λ_s needs
$D_1 \\approx h\\,\\hat x_0'$ and $D_2 \\approx h^2\\hat x_0''$. Backward differences give
$D_{1,0} \\approx h(\\hat x_0' - \\tfrac{h_0}{2}\\hat x_0'')$,
$D_{1,1} \\approx h(\\hat x_0' - (h_0 + \\tfrac{h_1}{2})\\hat x_0'')$, so
$(D_{1,0} - D_{1,1})/(r_0 + r_1) \\approx \\tfrac12 h^2\\hat x_0''$ ($D_1$ is right). The published
update (the reference code and the libraries that copied it) uses κ = 1, leaving a local error
$\\alpha_t\\frac{c_2}{2}\\hat x_0'' \\approx \\alpha_t h^3\\hat x_0''/12$: it converges at **order 2**.
`variant="taylor"` uses κ = 2 and converges at **order 3**. "published" stays the default for
parity with the reference implementations; `order()` declares the true order of each.

Warm-up and final steps (multistep): step i (0-based) uses order $\\min(p, n + 1)$ where n is the
number of previous predictions in the history (n = i on ordinary grids; a first point with α = 0
is not stored), capped at N − i by `lower_order_final` when N < 15 (diffusers' rule; the original
code used N < 10). Steps with an infinite log-SNR increment (α_s = 0, σ_t = 0) are first order:
into σ = 0 the update returns $\\alpha_t m_0$. NFE: 1 per step (multistep), k per step of order k
(single step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdiff.solvers.exponential import (
    AbstractExponentialSolver,
    data_coeff,
    exp_euler,
    history_ratios,
    init_multistep_history,
    lambda_step,
    push_history,
)

__all__ = ["DPMSolverPP"]

VARIANTS = ("published", "taylor")


class DPMSolverPP(AbstractExponentialSolver):
    """DPM-Solver++ 1/2S/3S (single step) and 2M/3M (multistep), data prediction.

    Args:
        order: 1, 2 or 3.
        multistep: multistep (2M, 3M; 1 NFE/step) or single step (2S, 3S; `order` NFE/step).
        variant: `"published"` (reference code, `solver_type="dpmsolver"`; default) or
            `"taylor"`. Declared orders: all `order`, except published 3M, which is order 2
            (module docstring).
        lower_order_final: cap the order at the steps left when N < 15.
        thresholding, threshold_ratio: dynamic thresholding of x̂0 (Imagen, 0.995).

    Shapes: `x[B, ...]`; scalar times. History (multistep): `MultistepHistory` with
    `[order − 1, B, ...]` previous x̂0 and their λ.
    """

    solver_order: int = 2
    multistep: bool = True
    variant: str = "published"
    lower_order_final: bool = True
    thresholding: bool = False
    threshold_ratio: float = 0.995

    def __init__(
        self,
        order: int = 2,
        multistep: bool = True,
        variant: str = "published",
        lower_order_final: bool = True,
        thresholding: bool = False,
        threshold_ratio: float = 0.995,
    ):
        self.solver_order = order
        self.multistep = bool(multistep)
        self.variant = variant
        self.lower_order_final = lower_order_final
        self.thresholding = thresholding
        self.threshold_ratio = float(threshold_ratio)

    def __check_init__(self):
        self._check_common(self.solver_order, self.variant, VARIANTS)

    def order(self, terms):
        if self.multistep and self.solver_order == 3 and self.variant == "published":
            return 2
        return self.solver_order

    def init_history(self, model, x):
        if not self.multistep:
            return None
        return init_multistep_history(x, self.solver_order - 1)

    def update(self, ctx, s, t, x, history):
        if self.multistep:
            return self._multistep(ctx, s, t, x, history)
        return self._singlestep(ctx, s, t, x, history)

    # --- single step ----------------------------------------------------------------------------
    def _singlestep(self, ctx, s, t, x, history):
        p = ctx.process
        m0, eps = self.predict_x0_eps(ctx, x, s)
        lam_s, _, _, hs, degenerate = lambda_step(p, s, t)
        k = jnp.where(degenerate, 1, self.order_cap(ctx, self.solver_order, always=False))
        a_t = p.alpha(t)
        base = exp_euler(p, t, m0, eps)
        taylor = self.variant == "taylor"

        def point(r):
            s_r = p.t_of_lam(lam_s + r * hs)
            return s_r, exp_euler(p, s_r, m0, eps)

        def order1():
            return base, jnp.int32(1)

        def order2():
            r1 = 0.5
            s1, u = point(r1)
            d = self.predict_x0_eps(ctx, u, s1)[0] - m0
            w = data_coeff(1, hs) / (r1 * hs) if taylor else data_coeff(0, hs) / (2.0 * r1)
            return base + a_t * w * d, jnp.int32(2)

        def order3():
            r1, r2 = 1.0 / 3.0, 2.0 / 3.0
            s1, u1 = point(r1)
            d1 = self.predict_x0_eps(ctx, u1, s1)[0] - m0
            s2, e2 = point(r2)
            u2 = e2 + p.alpha(s2) * (r2 / r1) * (data_coeff(1, r2 * hs) / (r2 * hs)) * d1
            d2 = self.predict_x0_eps(ctx, u2, s2)[0] - m0
            if taylor:
                D1_0, D1_1 = d1 / r1, d2 / r2
                D1 = (r2 * D1_0 - r1 * D1_1) / (r2 - r1)
                D2 = 2.0 * (D1_1 - D1_0) / (r2 - r1)
                corr = data_coeff(1, hs) / hs * D1 + data_coeff(2, hs) / hs**2 * D2
            else:
                corr = data_coeff(1, hs) / (r2 * hs) * d2
            return base + a_t * corr, jnp.int32(3)

        branches = [order1, order2, order3][: self.solver_order]
        x_t, nfe = jax.lax.switch(jnp.clip(k - 1, 0, self.solver_order - 1), branches)
        return x_t, history, nfe

    # --- multistep ------------------------------------------------------------------------------
    def _multistep(self, ctx, s, t, x, hist):
        p = ctx.process
        m0, eps = self.predict_x0_eps(ctx, x, s)
        lam_s, _, _, hs, degenerate = lambda_step(p, s, t)
        cap = self.order_cap(ctx, self.solver_order, always=False)
        k = jnp.minimum(cap, hist.count + 1)
        k = jnp.where(degenerate, 1, k)
        a_t = p.alpha(t)
        base = exp_euler(p, t, m0, eps)
        kappa = 2.0 if self.variant == "taylor" else 1.0
        n = hist.preds.shape[0]
        r = -history_ratios(hist, lam_s, hs, n)  # r[0] = h_0/h, r[1] = (h_0 + h_1)/h

        def order1():
            return base

        def order2():
            D1_0 = (m0 - hist.preds[0]) / r[0]
            if self.variant == "taylor":
                return base + a_t * (data_coeff(1, hs) / hs) * D1_0
            return base + 0.5 * a_t * data_coeff(0, hs) * D1_0

        def order3():
            r0, r1 = r[0], r[1] - r[0]
            D1_0 = (m0 - hist.preds[0]) / r0
            D1_1 = (hist.preds[0] - hist.preds[1]) / r1
            D1 = D1_0 + r0 / (r0 + r1) * (D1_0 - D1_1)
            D2 = kappa / (r0 + r1) * (D1_0 - D1_1)
            return base + a_t * (data_coeff(1, hs) / hs * D1 + data_coeff(2, hs) / hs**2 * D2)

        branches = [order1, order2, order3][: self.solver_order]
        x_t = jax.lax.switch(jnp.clip(k - 1, 0, self.solver_order - 1), branches)
        return x_t, push_history(hist, m0, lam_s), jnp.int32(1)
