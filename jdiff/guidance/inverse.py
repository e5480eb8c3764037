"""Posterior sampling for linear inverse problems $y = A x_0 + \\sigma_y z$ as Model transformers.

Each sampler replaces the score by an approximation of the posterior score
$\\nabla\\log p_t(x_t \\mid y) = \\nabla\\log p_t(x_t) + \\nabla\\log p_t(y \\mid x_t)$ (monograph §8,
"inverse problems"). With $\\hat x_0(x_t)$ the denoiser, $J = \\partial\\hat x_0/\\partial x_t$ and
$r = y - A\\hat x_0$:

| function | $\\nabla\\log p_t(y \\mid x_t) \\approx$ | source |
|---|---|---|
| `dps(step_rule="gaussian")` | $J^\\top A^\\top r / \\sigma_y^2$ (times ζ) | Chung et al. 2023 (DPS) |
| `dps(step_rule="normalized")` | $-\\zeta\\,\\nabla_{x_t}\\lVert r\\rVert = \\zeta\\,J^\\top A^\\top r/\\lVert r\\rVert$ | DPS's practical step |
| `pigdm` | $J^\\top A^\\top (\\sigma_y^2 I + r_t^2 A A^\\top)^{-1} r$, $r_t^2 = \\frac{\\sigma_d^2\\sigma_t^2}{\\sigma_t^2 + \\alpha_t^2\\sigma_d^2}$ | Song et al. 2023 (ΠGDM) |
| `projection` | $A^\\top\\gamma_t^{-1}(y_t - A x_t)$, $y_t = \\alpha_t y$ | monograph §8 table |
| `pseudo_inverse` | $A^\\dagger\\gamma_t^{-1}(y_t - A x_t)$ | monograph §8 table |

For `projection`/`pseudo_inverse`, $\\gamma_t = \\alpha_t^2\\sigma_y^2 I + \\sigma_t^2 A A^\\top$, the
covariance of $y_t - A x_t = \\alpha_t\\sigma_y z - \\sigma_t A\\varepsilon$ given $x_0$ (diagonal for
every operator in `jdiff.guidance.operators`); the monograph writes the gradient as
$-P_t M_t/\\gamma_t$ with $M_t = A x_t - y_t$, i.e. the same sign as here (towards consistency).

Exactness: for a Gaussian prior $\\mathcal N(\\mu, \\sigma_d^2 I)$,
$p(x_0 \\mid x_t) = \\mathcal N(\\hat x_0, r_t^2 I)$ exactly, so ΠGDM's likelihood is exact and its
guided score equals the diffused exact posterior's score (`tests/test_guidance.py` checks this).
DPS drops the $r_t^2 A A^\\top$ term (over-guides at high noise); the projection variants ignore
the prior's correlation between observed and unobserved coordinates. Their gaps to the exact
posterior are measured in `benchmarks/inverse_posterior.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.guidance.base import add_score, check_model, guided_model, in_interval, interval_params
from jdiff.guidance.operators import LinearOperator
from jdiff.guidance.training_free import DenoiserGradApply
from jdiff.model import Model
from jdiff.process.base import broadcast_to_batch

__all__ = ["dps", "pigdm", "projection", "pseudo_inverse", "DPS_STEP_RULES"]

DPS_STEP_RULES = ("gaussian", "normalized")


def _per_example_sum(a: Array) -> Array:
    return jnp.sum(a.reshape(a.shape[0], -1), axis=-1)


@dataclasses.dataclass(frozen=True)
class _DPSLoss:
    """DPS loss on x̂₀: ‖r‖²/(2σ_y²) ("gaussian") or ‖r‖ ("normalized"), `[B]`."""

    rule: str

    def __call__(self, x0, x, t, cond, process, lp):
        r = lp["y"].astype(x0.dtype) - lp["operator"].apply(x0)
        r2 = _per_example_sum(r**2)
        if self.rule == "gaussian":
            return 0.5 * r2 / lp["sigma_y"].astype(x0.dtype) ** 2
        return jnp.sqrt(r2 + jnp.finfo(x0.dtype).tiny)


@dataclasses.dataclass(frozen=True)
class _PiGDMLoss:
    """½ rᵀ(σ_y² I + r_t² A Aᵀ)⁺ r with r_t² = σ_d²σ_t²/(σ_t² + α_t²σ_d²), `[B]`."""

    def __call__(self, x0, x, t, cond, process, lp):
        r = lp["y"].astype(x0.dtype) - lp["operator"].apply(x0)
        a, s = process.alpha(t), process.sigma(t)
        sd2 = lp["sigma_data"].astype(x0.dtype) ** 2
        rt2 = sd2 * s**2 / (s**2 + a**2 * sd2)
        m_r = lp["operator"].gram_solve(r, lp["sigma_y"].astype(x0.dtype) ** 2, rt2)
        return 0.5 * _per_example_sum(r * m_r)


def _check(model, operator, sigma_y, what):
    model = check_model(model, what)
    if not isinstance(operator, LinearOperator):
        raise ValueError(
            f"{what} needs a jdiff.guidance.operators.LinearOperator (Denoising, Inpainting, "
            f"Downsample); got {type(operator).__name__}"
        )
    sigma_y = jnp.asarray(sigma_y, jnp.result_type(float))
    return model, sigma_y


def dps(
    model: Model,
    operator: LinearOperator,
    y: ArrayLike,
    sigma_y: ArrayLike,
    *,
    zeta: ArrayLike = 1.0,
    step_rule: str = "gaussian",
    interval: tuple[float, float] | None = None,
) -> Model:
    """Diffusion posterior sampling (Chung et al. 2023) as a guided `Model`.

    $\\tilde s = \\nabla\\log p_t(x_t) - \\zeta\\,\\nabla_{x_t}\\ell(\\hat x_0(x_t))$ with

    * `step_rule="gaussian"`: $\\ell = \\lVert y - A\\hat x_0\\rVert^2/(2\\sigma_y^2)$, the Gaussian
      likelihood with $\\hat x_0$ plugged in (ζ = 1 is the method as derived; needs σ_y > 0);
    * `step_rule="normalized"`: $\\ell = \\lVert y - A\\hat x_0\\rVert$, so
      $\\zeta\\nabla\\ell = (\\zeta/\\lVert y - A\\hat x_0\\rVert)\\,\\nabla\\tfrac12\\lVert y - A\\hat x_0\\rVert^2$:
      the practical step of the DPS paper (its $\\zeta_i = \\zeta'/\\lVert y - A\\hat x_0\\rVert$ on
      $\\nabla\\lVert\\cdot\\rVert^2$ is this with $\\zeta = 2\\zeta'$). Note the paper subtracts
      the gradient from the iterate after each DDPM step, whereas here it enters the score, which
      the solver then scales by its own step weight: the numerical value of a good ζ differs.

    Args:
        model: the prior diffusion `jdiff.Model`.
        operator: a `LinearOperator` (A).
        y: the measurement, `[B, ...]` or one `[...]` shared by the batch (as `operator.apply`
            returns it).
        sigma_y: measurement noise std σ_y.
        zeta: step size ζ (scalar).
        step_rule: `"gaussian"` or `"normalized"`.
        interval: optional `(t_lo, t_hi)`: guide only for times inside it.

    Returns:
        A guided `jdiff.Model` (inner prediction kind); `nfe_per_call` = the inner model's (the
        VJP through the network, about 2 forward passes of compute, is not counted).

    Raises:
        ValueError: unknown `step_rule` (lists the choices), a non-operator, or σ_y ≤ 0 with the
            Gaussian rule.
    """
    if step_rule not in DPS_STEP_RULES:
        raise ValueError(f"unknown step_rule {step_rule!r}; valid choices: {list(DPS_STEP_RULES)}")
    model, sigma_y = _check(model, operator, sigma_y, "dps")
    if step_rule == "gaussian":
        try:
            if float(sigma_y) <= 0:
                raise ValueError("dps(step_rule='gaussian') needs sigma_y > 0; use 'normalized'")
        except TypeError:  # traced σ_y: not checked
            pass
    lp = {"operator": operator, "y": jnp.asarray(y), "sigma_y": sigma_y}
    g = {"scale": jnp.asarray(zeta, jnp.result_type(float)), "loss_params": lp}
    g.update(interval_params(interval))
    apply = DenoiserGradApply(_DPSLoss(step_rule), model.nfe_per_call, interval is not None)
    return guided_model(apply, model, g)


def pigdm(
    model: Model,
    operator: LinearOperator,
    y: ArrayLike,
    sigma_y: ArrayLike,
    *,
    sigma_data: ArrayLike = 1.0,
    scale: ArrayLike = 1.0,
    interval: tuple[float, float] | None = None,
) -> Model:
    """Pseudoinverse-guided diffusion (ΠGDM, Song, Vahdat, Mardani, Kautz 2023) as a guided `Model`.

    $\\nabla\\log p_t(y\\mid x_t) \\approx J^\\top A^\\top(\\sigma_y^2 I + r_t^2 A A^\\top)^{-1}(y - A\\hat x_0)$,
    $r_t^2 = \\sigma_d^2\\sigma_t^2/(\\sigma_t^2 + \\alpha_t^2\\sigma_d^2)$ (the posterior variance
    of $x_0$ given $x_t$ under a $\\mathcal N(\\cdot, \\sigma_d^2 I)$ prior; the paper's
    $\\sigma_t^2/(1+\\sigma_t^2)$ is σ_d = 1 in VE form). Exact for isotropic Gaussian priors with
    variance σ_d²; σ_y = 0 (noiseless) is allowed.

    Args:
        model, operator, y, sigma_y, interval: as in `dps`.
        sigma_data: prior std σ_d used in $r_t^2$.
        scale: multiplies the likelihood score (1 = the method).

    Returns:
        A guided `jdiff.Model`; `nfe_per_call` = the inner model's (VJP not counted).
    """
    model, sigma_y = _check(model, operator, sigma_y, "pigdm")
    lp = {
        "operator": operator,
        "y": jnp.asarray(y),
        "sigma_y": sigma_y,
        "sigma_data": jnp.asarray(sigma_data, jnp.result_type(float)),
    }
    g = {"scale": jnp.asarray(scale, jnp.result_type(float)), "loss_params": lp}
    g.update(interval_params(interval))
    apply = DenoiserGradApply(_PiGDMLoss(), model.nfe_per_call, interval is not None)
    return guided_model(apply, model, g)


@dataclasses.dataclass(frozen=True)
class _MeasurementApply:
    """Apply of the projection / pseudo-inverse samplers; `params = (inner, g)`."""

    use_pinv: bool
    nfe_per_call: int
    has_interval: bool

    def __call__(self, params: tuple[Model, dict], x: Array, t: Array, cond: Any = None):
        inner, g = params
        out = inner.raw(x, t, cond)
        op = g["operator"]
        p = inner.process
        ax, sx = p.alpha(t), p.sigma(t)
        y_t = broadcast_to_batch(ax, x) * g["y"].astype(x.dtype)
        res = y_t - op.apply(x)  # [B, ...] measurement space (y_t broadcasts over the batch)
        res = jnp.broadcast_to(res, (x.shape[0],) + res.shape[1:])
        gamma_inv_res = op.gram_solve(res, ax**2 * g["sigma_y"].astype(x.dtype) ** 2, sx**2)
        back = op.adjoint(gamma_inv_res)
        if self.use_pinv:
            back = op.adjoint(op.gram_solve(gamma_inv_res, 0.0, 1.0))
        delta = g["scale"].astype(out.dtype) * back
        if self.has_interval:
            delta = jnp.where(in_interval(g, t, x), delta, 0.0)
        return add_score(p, inner.prediction, out, x, t, delta)


def _measurement_model(model, operator, y, sigma_y, scale, interval, use_pinv, what):
    model, sigma_y = _check(model, operator, sigma_y, what)
    g = {
        "operator": operator,
        "y": jnp.asarray(y),
        "sigma_y": sigma_y,
        "scale": jnp.asarray(scale, jnp.result_type(float)),
        **interval_params(interval),
    }
    apply = _MeasurementApply(use_pinv, model.nfe_per_call, interval is not None)
    return guided_model(apply, model, g)


def projection(
    model: Model,
    operator: LinearOperator,
    y: ArrayLike,
    sigma_y: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    interval: tuple[float, float] | None = None,
) -> Model:
    """Projection guidance: $\\tilde s = s + \\text{scale}\\cdot A^\\top\\gamma_t^{-1}(\\alpha_t y - A x_t)$.

    $\\gamma_t = \\alpha_t^2\\sigma_y^2 I + \\sigma_t^2 A A^\\top$ (see the module docstring). No
    backpropagation through the network: `nfe_per_call` = the inner model's.

    Args:
        model, operator, y, sigma_y, interval: as in `dps` (`y` is one measurement `[...]` with a
            leading 1 or `[B, ...]`, as `operator.apply` returns it).
        scale: multiplies the likelihood score.

    Returns:
        A guided `jdiff.Model` with the inner prediction kind.
    """
    return _measurement_model(model, operator, y, sigma_y, scale, interval, False, "projection")


def pseudo_inverse(
    model: Model,
    operator: LinearOperator,
    y: ArrayLike,
    sigma_y: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    interval: tuple[float, float] | None = None,
) -> Model:
    """Pseudo-inverse guidance: $\\tilde s = s + \\text{scale}\\cdot A^\\dagger\\gamma_t^{-1}(\\alpha_t y - A x_t)$.

    Same as `projection` with $A^\\dagger = A^\\top(A A^\\top)^{-1}$ in place of $A^\\top$ (equal for
    `Denoising` and `Inpainting`, $f^k$ times larger for `Downsample`).
    """
    return _measurement_model(model, operator, y, sigma_y, scale, interval, True, "pseudo_inverse")
