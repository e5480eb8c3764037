"""Shared machinery of the exponential-integrator solvers (DPM-Solver, DPM-Solver++, UniPC, DEIS).

The probability-flow ODE is semilinear; in the half log-SNR $\\lambda = \\log\\alpha - \\log\\sigma$
its exact solution from s (noisier) to t (cleaner), with $h = \\lambda_t - \\lambda_s > 0$, is
(monograph §9.1, §9.4–9.5; Lu et al. 2022, 2022b)

$$x_t = \\frac{\\alpha_t}{\\alpha_s}x_s - \\alpha_t\\int_{\\lambda_s}^{\\lambda_t} e^{-\\lambda}
\\hat\\varepsilon\\,d\\lambda \\quad\\text{(noise form)}
= \\frac{\\sigma_t}{\\sigma_s}x_s + \\sigma_t\\int_{\\lambda_s}^{\\lambda_t} e^{\\lambda}\\hat x_0\\,d\\lambda
\\quad\\text{(data form)}.$$

Expanding the prediction in powers of $\\lambda - \\lambda_s$ gives the integrals

$$\\sigma_t\\int_{\\lambda_s}^{\\lambda_t} e^{\\lambda}\\frac{(\\lambda-\\lambda_s)^k}{k!}d\\lambda
= \\alpha_t\\,h^{k+1}\\varphi_{k+1}(-h), \\qquad
\\alpha_t\\int_{\\lambda_s}^{\\lambda_t} e^{-\\lambda}\\frac{(\\lambda-\\lambda_s)^k}{k!}d\\lambda
= \\sigma_t\\,h^{k+1}\\varphi_{k+1}(h),$$

with $\\varphi_k(z) = \\int_0^1 e^{(1-\\theta)z}\\theta^{k-1}/(k-1)!\\,d\\theta$
($\\varphi_1 = (e^z-1)/z$, $\\varphi_2 = (e^z-1-z)/z^2$, …): `data_coeff(k, h)` and `noise_coeff(k, h)`.

**Shared conventions of jdiff's exponential integrators.**

* The exponential-Euler part of every update is written $\\alpha_t\\hat x_0 + \\sigma_t\\hat\\varepsilon$
  (`exp_euler`), which equals both $\\frac{\\alpha_t}{\\alpha_s}x_s - \\sigma_t(e^h - 1)\\hat\\varepsilon$
  and $\\frac{\\sigma_t}{\\sigma_s}x_s + \\alpha_t(1-e^{-h})\\hat x_0$ (with $x_s = \\alpha_s\\hat x_0 +
  \\sigma_s\\hat\\varepsilon$) but divides by neither α_s nor σ_s. So the noise-form solvers (DPMSolver,
  DEIS) stay finite at a first point with α_s = 0 (λ_s = −∞, Linear/Trig at t = 1), and the step
  into σ_t = 0 returns $\\alpha_t\\hat x_0$.
* A step with an infinite log-SNR increment (α_s = 0 or σ_t = 0) is the first-order update
  (exact for a constant prediction over an infinite λ-interval) with 1 NFE; its start point never
  enters a multistep history (λ_s = −∞ cannot be used in divided differences).
* `lower_order_final` (with N the number of grid steps and i the 0-based step index) caps the
  order at N − i, i.e. first order on the last step and at most second order on the one before, as
  in the reference codes (`min(order, steps + 1 - step)`); each solver documents whether the cap
  applies for every N or only for N < 15 (diffusers' threshold for DPM-Solver++ and DEIS).
* Dynamic thresholding (Saharia et al. 2022, Imagen): see `dynamic_threshold`.

These solvers take scalar times, as `jdiff.solve` supplies them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.process.base import broadcast_to_batch
from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = [
    "phi",
    "data_coeff",
    "noise_coeff",
    "lambda_step",
    "dynamic_threshold",
    "exp_euler",
    "AbstractExponentialSolver",
    "MultistepHistory",
    "init_multistep_history",
    "push_history",
    "history_ratios",
    "LOWER_ORDER_FINAL_MAX_STEPS",
]

# diffusers' threshold for lower_order_final (DPMSolverMultistepScheduler, DEISMultistepScheduler)
LOWER_ORDER_FINAL_MAX_STEPS = 15

_SERIES_TERMS = 24
_SERIES_RADIUS = 1.0


def phi(k: int, z: ArrayLike) -> Array:
    """The φ-function $\\varphi_k(z) = \\sum_{j\\ge 0} z^j/(j+k)!$, elementwise, for k ≥ 1.

    Closed form $\\varphi_k(z) = (e^z - \\sum_{j<k} z^j/j!)/z^k$ (computed with `expm1`) for
    |z| ≥ 1, and the truncated series (24 terms, error < 1e-23) for |z| < 1 where the closed form
    cancels. Finite for finite z; callers pass a finite (safe) z.
    """
    if k < 1:
        raise ValueError(f"phi needs k >= 1; got {k}")
    z = jnp.asarray(z, dtype=jnp.result_type(z, float))
    small = jnp.abs(z) < _SERIES_RADIUS
    zs = jnp.where(small, z, 0.0)
    series = jnp.zeros_like(z)
    for j in reversed(range(_SERIES_TERMS)):
        series = series * zs + 1.0 / math.factorial(j + k)
    zb = jnp.where(small, 1.0, z)
    num = jnp.expm1(zb)
    for j in range(1, k):
        num = num - zb**j / math.factorial(j)
    return jnp.where(small, series, num / zb**k)


def data_coeff(k: int, h: ArrayLike) -> Array:
    """$\\int_0^h e^{-\\tau}(h-\\tau)^k/k!\\,d\\tau = h^{k+1}\\varphi_{k+1}(-h)$ (data-form weight of
    the k-th λ-derivative of $\\hat x_0$, times α_t). k = 0: $1 - e^{-h}$."""
    h = jnp.asarray(h)
    return h ** (k + 1) * phi(k + 1, -h)


def noise_coeff(k: int, h: ArrayLike) -> Array:
    """$\\int_0^h e^{h-u}u^k/k!\\,du = h^{k+1}\\varphi_{k+1}(h)$ (noise-form weight of the k-th
    λ-derivative of $\\hat\\varepsilon$, times σ_t). k = 0: $e^h - 1$."""
    h = jnp.asarray(h)
    return h ** (k + 1) * phi(k + 1, h)


def lambda_step(process, s: ArrayLike, t: ArrayLike):
    """`(lam_s, lam_t, h, h_safe, degenerate)` for a step s → t.

    `h = lam_t − lam_s` (> 0); `degenerate` is True where h is not finite (α_s = 0 or σ_t = 0), and
    `h_safe` replaces such h by 1 so that higher-order coefficients stay finite (they are unused).
    """
    lam_s = process.lam(s)
    lam_t = process.lam(t)
    h = lam_t - lam_s
    degenerate = ~jnp.isfinite(h)
    return lam_s, lam_t, h, jnp.where(degenerate, 1.0, h), degenerate


def dynamic_threshold(x0: Array, ratio: float = 0.995) -> Array:
    """Dynamic thresholding of a data prediction (Saharia et al. 2022, Imagen, §2.3).

    Per example, $s = \\max(1, \\mathrm{quantile}_{ratio}(|\\hat x_0|))$ over all non-batch
    entries, then $\\hat x_0 \\leftarrow \\mathrm{clip}(\\hat x_0, -s, s)/s$. For data in [−1, 1]
    this pushes saturated pixels inwards; when fewer than a `1 − ratio` fraction of the entries
    exceed 1 in magnitude (s = 1) it is plain clipping to [−1, 1]. (The convention of Imagen,
    DPM-Solver's `thresholding_max_val = 1` and diffusers' `sample_max_value = 1`.)

    Args:
        x0: `[B, ...]` data prediction.
        ratio: the quantile (Imagen's percentile 99.5% → 0.995).

    Returns:
        `[B, ...]`, the thresholded prediction (entries in [−1, 1]).
    """
    flat = jnp.abs(x0.reshape(x0.shape[0], -1))
    s = jnp.maximum(jnp.quantile(flat, ratio, axis=1), 1.0)
    s = broadcast_to_batch(s, x0)
    return jnp.clip(x0, -s, s) / s


def exp_euler(process, t: ArrayLike, x0: Array, eps: Array) -> Array:
    """Exponential Euler / DDIM / DPM-Solver-1 endpoint $\\alpha_t\\hat x_0 + \\sigma_t\\hat\\varepsilon$
    (module docstring: equal to both the noise and the data form, finite at α_s = 0 and σ_t = 0)."""
    return process.alpha(t) * x0 + process.sigma(t) * eps


class MultistepHistory(NamedTuple):
    """History of a multistep exponential integrator (a fixed-structure pytree of arrays).

    Attributes:
        preds: `[K, B, ...]` model outputs (x̂0 or ε̂) at the previous grid points, newest first.
        lams: `[K]` their λ values.
        count: int32, how many entries are valid (0 ≤ count ≤ K).
        extra: `[B, ...]` solver-specific state (UniPC: the model output at the current point
            computed by the previous corrector), zeros when unused.
    """

    preds: Array
    lams: Array
    count: Array
    extra: Array


def init_multistep_history(x: Array, k: int) -> MultistepHistory:
    """Empty `MultistepHistory` with `k` slots for states shaped like `x`."""
    k = max(int(k), 1)
    return MultistepHistory(
        preds=jnp.zeros((k,) + x.shape, x.dtype),
        lams=jnp.zeros((k,), x.dtype),
        count=jnp.zeros((), jnp.int32),
        extra=jnp.zeros_like(x),
    )


def push_history(hist: MultistepHistory, pred: Array, lam: Array, extra=None) -> MultistepHistory:
    """Prepend `(pred, lam)`; a point with non-finite λ (α = 0) empties the history instead."""
    k = hist.preds.shape[0]
    valid = jnp.isfinite(lam)
    preds = jnp.concatenate([pred[None].astype(hist.preds.dtype), hist.preds[:-1]], axis=0)
    lams = jnp.concatenate([jnp.where(valid, lam, 0.0)[None].astype(hist.lams.dtype), hist.lams])
    count = jnp.where(valid, jnp.minimum(hist.count + 1, k), 0).astype(jnp.int32)
    return MultistepHistory(
        preds, lams[:k], count, hist.extra if extra is None else extra.astype(hist.extra.dtype)
    )


def history_ratios(hist: MultistepHistory, lam_s: Array, h_safe: Array, n: int) -> Array:
    """`[n]` ratios $r_j = (\\lambda_j - \\lambda_s)/h$ of the n newest history points (negative).

    Invalid slots (j ≥ count) get the placeholder −(j + 1) so every coefficient stays finite;
    solvers never give them weight.
    """
    j = jnp.arange(n)
    lam_s = jnp.where(jnp.isfinite(lam_s), lam_s, 0.0)
    r = (hist.lams[:n] - lam_s) / h_safe
    return jnp.where(j < hist.count, r, -(j + 1.0)).astype(hist.lams.dtype)


class AbstractExponentialSolver(AbstractDiffusionSolver):
    """Base of jdiff's exponential integrators: thresholding, the order schedule, predictions.

    Subclasses declare the fields `solver_order` (int), `thresholding` (bool: apply
    `dynamic_threshold` to every $\\hat x_0$; noise-form solvers then use
    $\\hat\\varepsilon = (x - \\alpha\\hat x_0)/\\sigma$, as diffusers does), `threshold_ratio`
    (Imagen: 0.995) and `lower_order_final`, and implement `update`. (`order` is the
    `diffrax.AbstractSolver` method, so the constructors take `order=` and store `solver_order`.)
    """

    def _check_common(self, order: int, variant: str | None = None, variants=()):
        if order not in (1, 2, 3):
            raise ValueError(f"order must be one of 1, 2, 3; got {order!r}")
        if variant is not None and variant not in variants:
            raise ValueError(f"unknown variant {variant!r}; valid choices: {list(variants)}")
        if not 0.0 < self.threshold_ratio <= 1.0:
            raise ValueError(f"threshold_ratio must lie in (0, 1]; got {self.threshold_ratio}")

    def predict_x0_eps(self, ctx, x: Array, t: Array) -> tuple[Array, Array]:
        """$(\\hat x_0, \\hat\\varepsilon)$ at `(x, t)` (one NFE), thresholded if requested."""
        x0, eps = ctx.x0_eps(x, t)
        if self.thresholding:
            x0 = dynamic_threshold(x0, self.threshold_ratio)
            p = ctx.process
            eps = (x - p.alpha(t) * x0) / p.sigma(t)
        return x0, eps

    def order_cap(self, ctx, order: int, always: bool) -> Array:
        """Highest order allowed at this step by `lower_order_final` (int32 scalar).

        With `lower_order_final` the cap is N − i (N steps, 0-based step i) when `always` or
        N < 15, else `order`.
        """
        lof = getattr(self, "lower_order_final", False)
        active = lof and (always or ctx.num_steps < LOWER_ORDER_FINAL_MAX_STEPS)
        if not active:
            return jnp.asarray(order, jnp.int32)
        return jnp.minimum(order, ctx.steps_left).astype(jnp.int32)
