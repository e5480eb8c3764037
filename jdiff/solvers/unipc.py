"""UniPC (Zhao, Bai, Rao, Zhou, Lu 2023): unified predictor–corrector, data prediction, multistep.

From s to t with $h = \\lambda_t - \\lambda_s$, $hh = -h$, $m_0 = \\hat x_0$ at s, the previous
predictions $m_k$ at $\\lambda_k$ (k = 1 … p−1, newest first), $r_k = (\\lambda_k - \\lambda_s)/h$ and
$D_k = (m_k - m_0)/r_k$ (paper Alg. 1–3 and its reference code `multistep_uni_pc_bh_update`):

$$x_t^{pred} = \\frac{\\sigma_t}{\\sigma_s}x_s - \\alpha_t(e^{hh}-1)m_0 - \\alpha_t B(h)\\sum_{k<p}a_kD_k
\\quad\\text{(UniP-p)},$$

with $B(h) = hh$ ("bh1") or $e^{hh} - 1$ ("bh2"). The corrector UniC-p adds the point $r_p = 1$ with
$D_p = \\hat x_0(x_t^{pred}, t) - m_0$:
$x_t = \\frac{\\sigma_t}{\\sigma_s}x_s - \\alpha_t(e^{hh}-1)m_0 - \\alpha_t B(h)(\\sum_{k<p}c_kD_k + c_pD_p)$.
The coefficients solve $R\\,a = b$ with $R_{ik} = r_k^{i-1}$ and $b_i = hh\\,\\varphi_{i+1}(hh)\\,i!/B(h)$
(predictor: the (p−1)×(p−1) block; corrector: p×p), except the reference's simplified choices
$a = (\\tfrac12)$ for the order-2 predictor and $c = (\\tfrac12)$ for the order-1 corrector. With bh2 the
order-2 predictor is exactly DPM-Solver++(2M).

The corrector's evaluation $\\hat x_0(x_t^{pred}, t)$ is stored and used as the next step's $m_0$
(the step then starts from the corrected $x_t$ but does not evaluate the network again), so the
corrector costs no extra NFE: the first step costs 2 NFE, the others 1, and the final step, which
has no corrector (as in the reference implementation), 0 — N NFE in total for N steps.

Order: UniP-p has order p; with the corrector, p + 1. Warm-up: step i (0-based) uses
$p_i = \\min(p, n + 1)$ with n the valid history length (= i on ordinary grids), capped by
`lower_order_final` at N − i **for every N** (the UniPC reference code applies the cap without
diffusers' N < 15 threshold). Steps with an infinite log-SNR increment are first order: the
step from α_s = 0 is the exact exponential-Euler step (the corrector's evaluation is still made
and stored, its correction is not applied), and into σ = 0 the update returns $\\alpha_t m_0$ with
$m_0$ the stored prediction (as the reference does).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jdiff.solvers.exponential import (
    AbstractExponentialSolver,
    history_ratios,
    init_multistep_history,
    lambda_step,
    phi,
    push_history,
)

__all__ = ["UniPC"]

VARIANTS = ("bh1", "bh2")


def _b_vector(hh, bh):
    """$b_i = hh\\,\\varphi_{i+1}(hh)\\,i!/B(h)$, i = 1, 2, 3 → `[3]`."""
    return jnp.stack([hh * phi(i + 1, hh) * math.factorial(i) / bh for i in (1, 2, 3)])


def _solve_vandermonde(nodes, b):
    """Solve $R a = b$ with $R_{ik} = r_k^{i}$ (i = 0..n−1) for n = 2 or 3 nodes, in closed form.

    UniPC's coefficient systems are transposed Vandermonde systems; Cramer's rule on these tiny
    systems avoids a LAPACK/cuSOLVER call inside every step (a measurable per-step cost on GPU).
    """
    b = jnp.asarray(b)
    if len(nodes) == 2:
        r0, r1 = nodes
        det = r1 - r0
        return jnp.stack([(b[0] * r1 - b[1]) / det, (b[1] - b[0] * r0) / det]).astype(b.dtype)
    r0, r1, r2 = nodes
    # the inverse of a transposed Vandermonde matrix holds the coefficients of the Lagrange
    # basis polynomials ℓ_k(x) = Π_{j≠k}(x − r_j)/(r_k − r_j): a_k = Σ_i b_i [x^i] ℓ_k(x).
    out = []
    for rk, rj, rl in ((r0, r1, r2), (r1, r0, r2), (r2, r0, r1)):
        den = (rk - rj) * (rk - rl)
        # ℓ_k(x) = (x² − (r_j + r_l) x + r_j r_l) / den
        out.append((b[0] * rj * rl - b[1] * (rj + rl) + b[2]) / den)
    return jnp.stack(out).astype(b.dtype)


class UniPC(AbstractExponentialSolver):
    """UniPC multistep predictor (UniP-p) with optional corrector (UniC-p), data prediction.

    Args:
        order: predictor order p ∈ {1, 2, 3}.
        variant: `"bh1"` (B(h) = −h) or `"bh2"` (B(h) = e^{−h} − 1; the paper's recommendation for
            guided sampling and diffusers' default).
        corrector: apply UniC (no extra NFE); declared order p + 1 with it, p without.
        lower_order_final: cap the order at N − i at every N (reference UniPC).
        thresholding, threshold_ratio: dynamic thresholding of x̂0.

    Shapes: `x[B, ...]`; scalar times. History: `MultistepHistory` with `[max(p−1, 1), B, ...]`
    previous x̂0, their λ, and (`extra`) the corrector's evaluation at the current point.
    """

    solver_order: int = 2
    variant: str = "bh2"
    corrector: bool = True
    lower_order_final: bool = True
    thresholding: bool = False
    threshold_ratio: float = 0.995

    def __init__(
        self,
        order: int = 2,
        variant: str = "bh2",
        corrector: bool = True,
        lower_order_final: bool = True,
        thresholding: bool = False,
        threshold_ratio: float = 0.995,
    ):
        self.solver_order = order
        self.variant = variant
        self.corrector = bool(corrector)
        self.lower_order_final = lower_order_final
        self.thresholding = thresholding
        self.threshold_ratio = float(threshold_ratio)

    def __check_init__(self):
        self._check_common(self.solver_order, self.variant, VARIANTS)

    def order(self, terms):
        return self.solver_order + (1 if self.corrector else 0)

    def init_history(self, model, x):
        return init_multistep_history(x, self.solver_order - 1)

    def update(self, ctx, s, t, x, hist):
        p = ctx.process
        lam_s, _, h, hs, degenerate = lambda_step(p, s, t)
        sig_s, a_t, sig_t = p.sigma(s), p.alpha(t), p.sigma(t)

        use_stored = jnp.logical_and(self.corrector, ctx.step > 0)
        m0 = jax.lax.cond(
            use_stored,
            lambda: hist.extra,
            lambda: self.predict_x0_eps(ctx, x, s)[0],
        )
        nfe = jnp.where(use_stored, 0, 1).astype(jnp.int32)

        k = jnp.minimum(self.order_cap(ctx, self.solver_order, always=True), hist.count + 1)
        k = jnp.where(degenerate, 1, k)

        hh = -hs
        bh = hh if self.variant == "bh1" else jnp.expm1(hh)
        b = _b_vector(hh, bh)
        n = hist.preds.shape[0]
        r = history_ratios(hist, lam_s, hs, n)  # [n], negative
        D = [(hist.preds[j] - m0) / r[j] for j in range(n)]
        r1 = r[0]
        r2 = r[1] if n > 1 else r[0]

        # predictor coefficients a (on D_1, D_2) and corrector coefficients c (on D_1, D_2, D_t)
        def coeffs1():
            return jnp.zeros(2, b.dtype), jnp.array([0.0, 0.0, 0.5], b.dtype)

        def coeffs2():
            a = jnp.array([0.5, 0.0], b.dtype)
            c = _solve_vandermonde((r1, 1.0), b[:2])
            return a, jnp.stack([c[0], 0.0, c[1]]).astype(b.dtype)

        def coeffs3():
            a = _solve_vandermonde((r1, r2), b[:2])
            return a, _solve_vandermonde((r1, r2, 1.0), b)

        branches = [coeffs1, coeffs2, coeffs3][: self.solver_order]
        a, c = jax.lax.switch(jnp.clip(k - 1, 0, self.solver_order - 1), branches)

        # exponential-Euler part σ_t/σ_s x − α_t (e^{hh} − 1) m0, finite at α_s = 0 and σ_t = 0
        x_lin = sig_t / sig_s * x - a_t * jnp.expm1(-h) * m0
        res_p = sum(a[j] * D[j] for j in range(n))
        res_c = sum(c[j] * D[j] for j in range(n))
        x_pred = jnp.where(degenerate, x_lin, x_lin - a_t * bh * res_p)

        if not self.corrector:
            return x_pred, push_history(hist, m0, lam_s), nfe

        def correct():
            m_t = self.predict_x0_eps(ctx, x_pred, t)[0]
            x_c = x_lin - a_t * bh * (res_c + c[2] * (m_t - m0))
            return jnp.where(degenerate, x_pred, x_c), m_t, jnp.int32(1)

        def final():
            return x_pred, jnp.zeros_like(m0), jnp.int32(0)

        x_t, m_t, nfe_c = jax.lax.cond(ctx.steps_left > 1, correct, final)
        return x_t, push_history(hist, m0, lam_s, extra=m_t), nfe + nfe_c
