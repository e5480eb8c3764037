"""The discrete-time variational bound of DDPM (Ho, Jain & Abbeel 2020; Sohl-Dickstein et al. 2015).

For a `jdiff.process.Discrete` schedule with N steps (Ho's variances β_i, jdiff's
$\\alpha_i = \\sqrt{\\bar\\alpha_i}$, $\\sigma_i^2 = 1 - \\alpha_i^2$, step i at time t_i = i/N):

$$-\\log p_\\theta(x_0) \\le \\underbrace{\\mathrm{KL}(q(x_N|x_0)\\,\\|\\,\\pi)}_{L_N}
+ \\sum_{i=2}^{N}\\underbrace{\\mathbb E_q\\,\\mathrm{KL}(q(x_{i-1}|x_i,x_0)\\,\\|\\,p_\\theta(x_{i-1}|x_i))}_{L_{i-1}}
\\underbrace{-\\,\\mathbb E_q\\log p_\\theta(x_0|x_1)}_{L_0}.$$

The posterior is $q(x_{i-1}|x_i,x_0) = \\mathcal N(c_0 x_0 + c_i x_i,\\ \\tilde\\beta_i I)$ with
$c_0 = \\alpha_{i-1}\\beta_i/\\sigma_i^2$, $c_i = \\sqrt{1-\\beta_i}\\,\\sigma_{i-1}^2/\\sigma_i^2$,
$\\tilde\\beta_i = \\sigma_{i-1}^2\\beta_i/\\sigma_i^2$ (Ho et al. eqs. 6–7), and the model's reverse
kernel is $\\mathcal N(c_0\\hat x_0(x_i, t_i) + c_i x_i,\\ v_i I)$ with $v_i = \\tilde\\beta_i$
(`variance="posterior"`) or $\\beta_i$ (`"beta"`), so

$$L_{i-1} = \\sum_d\\Big[\\tfrac12\\log\\frac{v_i}{\\tilde\\beta_i} + \\frac{\\tilde\\beta_i + c_0^2(x_0 - \\hat x_0)^2}{2 v_i} - \\tfrac12\\Big].$$

The decoder $p_\\theta(x_0|x_1)$ has mean $\\hat x_0(x_1, t_1)$ (the posterior mean at i = 1) and
variance $\\beta_1$ for `"beta"` (Ho et al.'s $\\sigma_1^2 = \\beta_1$) or $\\tilde\\beta_2$ for
`"posterior"` ($\\tilde\\beta_1 = 0$, clipped to $\\tilde\\beta_2$ as in Ho et al.'s code). `decoder="discretized"` is Ho et al.'s eq. 13 for 8-bit data on the grid
$\\{low + k(high-low)/255\\}$ (bins of width (high−low)/255, the two end bins open); the bound is
then on the discrete probability $\\log P_\\theta(x_0)$ and $-\\text{elbo}/(D\\ln 2)$ is bits/dim with
no offset. `decoder="gaussian"` is a continuous $\\mathcal N(\\hat x_0, \\tilde\\beta_2 I)$ density for
continuous data; the bound is on a density and compares with `log_likelihood`. The prior is the
process's $\\pi = \\mathcal N(0, \\sigma_N^2 I)$ (Ho uses N(0, I); the difference is O(α_N²)).

Expectations over $x_i \\sim q(x_i|x_0)$ are Monte Carlo: `terms="all"` evaluates every term with
its own $x_i$ (N network calls per example, the exact sum over i), `terms="sampled"` draws one
$i \\sim \\mathcal U\\{1..N\\}$ per example and returns $L_N + N\\,L_{i-1}$ (unbiased, one call).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr
from jaxtyping import Array, PRNGKeyArray

from jdiff.model import Model
from jdiff.process.discrete import Discrete

__all__ = ["ELBOResult", "ddpm_elbo", "discretized_gaussian_log_prob"]

_VARIANCES = ("posterior", "beta")
_DECODERS = ("discretized", "gaussian")
_TERMS = ("all", "sampled")


class ELBOResult(eqx.Module):
    """Result of `ddpm_elbo` (all in nats, per example).

    Attributes:
        elbo: `[B]` the variational lower bound on $\\log p_\\theta(x_0)$ ($= -(L_N + \\sum L + L_0)$).
        prior_kl: `[B]` $L_N$ (closed form).
        diffusion_kl: `[B]` $\\sum_{i=2}^N L_{i-1}$ (Monte Carlo estimate).
        reconstruction: `[B]` $L_0 = -\\log p_\\theta(x_0|x_1)$ (Monte Carlo estimate).
        per_step: `[B, N]` with `terms="all"`: column 0 is $L_0$, column i−1 is $L_{i-1}$; else None.
    """

    elbo: Array
    prior_kl: Array
    diffusion_kl: Array
    reconstruction: Array
    per_step: Array | None


def _log_diff_ndtr(a, b):
    """$\\log(\\Phi(b) - \\Phi(a))$ for a < b, stable in both tails."""
    flip = a > 0
    lo = jnp.where(flip, -b, a)
    hi = jnp.where(flip, -a, b)
    l_hi = log_ndtr(hi)
    l_lo = log_ndtr(lo)
    return l_hi + jnp.log(-jnp.expm1(jnp.minimum(l_lo - l_hi, -1e-300)))


def discretized_gaussian_log_prob(
    x: Array, mean: Array, std: Array, low: float = -1.0, high: float = 1.0, levels: int = 256
) -> Array:
    """Elementwise log-probability of Ho et al.'s discretized Gaussian decoder (2020, eq. 13).

    $P(x) = \\Phi((x + \\delta - \\mu)/s) - \\Phi((x - \\delta - \\mu)/s)$ with half-bin width
    $\\delta = (high - low)/(2(levels - 1))$, the lower edge replaced by −∞ at `low` and the upper by
    +∞ at `high`. `x` must lie on the grid $low + k(high - low)/(levels-1)$; all arguments
    broadcast, the result is shaped like their broadcast.
    """
    half = (high - low) / (2.0 * (levels - 1))
    a = (x - half - mean) / std
    b = (x + half - mean) / std
    first = x < low + half
    last = x > high - half
    a = jnp.where(first, -jnp.inf, a)
    b = jnp.where(last, jnp.inf, b)
    # Replace infinite edges in the two-sided formula by finite values, then pick the tails.
    a_safe = jnp.where(first, b - 1.0, a)
    b_safe = jnp.where(last, a + 1.0, b)
    mid = _log_diff_ndtr(a_safe, b_safe)
    return jnp.where(first, log_ndtr(b_safe), jnp.where(last, log_ndtr(-a_safe), mid))


def _schedule(process: Discrete, dtype):
    la = process.log_alpha_grid.astype(dtype)  # [N+1], la[0] = 0
    alpha = jnp.exp(la)
    sig2 = -jnp.expm1(2.0 * la)
    beta = -jnp.expm1(2.0 * jnp.diff(la))  # [N], beta[i-1] = β_i
    # posterior coefficients for i = 1..N (index i-1); i = 1 entries are placeholders
    c0 = alpha[:-1] * beta / sig2[1:]
    ci = jnp.sqrt(1.0 - beta) * sig2[:-1] / sig2[1:]
    bt = sig2[:-1] * beta / sig2[1:]
    return alpha, sig2, beta, c0, ci, bt


def _sum(a):
    return jnp.sum(a.reshape(a.shape[0], -1), axis=-1)


@eqx.filter_jit
def _elbo(model, x0, key, cond, variance, decoder, terms, centered, t_batch):
    process = model.process
    n = process.num_steps
    alpha, sig2, beta, c0, _, bt = _schedule(process, x0.dtype)
    # decoder variance: β_1 for "beta"; β̃_1 = 0 is clipped to β̃_2 for "posterior" (Ho et al.'s code)
    dec_std = jnp.sqrt(bt[1] if variance == "posterior" else beta[0])
    var_p = bt if variance == "posterior" else beta
    low, high = (-1.0, 1.0) if centered else (0.0, 1.0)

    # L_N: KL(N(α_N x0, σ_N²) || N(0, s²)) per dimension, summed
    s2 = process.prior_std().astype(x0.dtype) ** 2
    d = math.prod(x0.shape[1:])
    prior_kl = 0.5 * _sum(alpha[-1] ** 2 * x0**2) / s2 + d * (
        0.5 * jnp.log(s2 / sig2[-1]) + 0.5 * sig2[-1] / s2 - 0.5
    )

    def term(i, k):
        """Terms for step(s) i (int32 scalar or [B]) with noise key k → (recon[B], kl[B])."""
        ib = jnp.broadcast_to(i, x0.shape[:1])
        shape = (-1,) + (1,) * (x0.ndim - 1)
        eps = jax.random.normal(k, x0.shape, x0.dtype)
        xi = alpha[ib].reshape(shape) * x0 + jnp.sqrt(sig2[ib]).reshape(shape) * eps
        t = process.t_grid.astype(x0.dtype)[i]
        x0_hat = model.x0(xi, t, cond)
        if decoder == "discretized":
            recon = -_sum(discretized_gaussian_log_prob(x0, x0_hat, dec_std, low, high))
        else:
            recon = 0.5 * _sum(((x0 - x0_hat) / dec_std) ** 2) + d * (
                jnp.log(dec_std) + 0.5 * math.log(2 * math.pi)
            )
        j = jnp.maximum(ib - 1, 1)  # index of β_i; i = 1 uses a safe placeholder
        vq, vp, c = bt[j], var_p[j], c0[j]
        kl = 0.5 * _sum((c.reshape(shape) * (x0 - x0_hat)) ** 2) / vp + d * (
            0.5 * jnp.log(vp / vq) + 0.5 * vq / vp - 0.5
        )
        first = ib == 1
        return jnp.where(first, recon, 0.0), jnp.where(first, 0.0, kl)

    if terms == "all":
        steps = jnp.arange(1, n + 1)
        recon_all, kl_all = jax.lax.map(
            lambda i: term(i, jax.random.fold_in(key, i)), steps, batch_size=t_batch
        )  # [N, B] each
        per_step = (recon_all + kl_all).T
        recon = recon_all[0]
        diffusion = jnp.sum(kl_all, axis=0)
    else:
        k_i, k_eps = jax.random.split(key)
        i = jax.random.randint(k_i, x0.shape[:1], 1, n + 1)
        r, kl = term(i, k_eps)
        recon, diffusion, per_step = n * r, n * kl, None
    return ELBOResult(
        elbo=-(prior_kl + diffusion + recon),
        prior_kl=prior_kl,
        diffusion_kl=diffusion,
        reconstruction=recon,
        per_step=per_step,
    )


def ddpm_elbo(
    model: Model,
    x0: Array,
    key: PRNGKeyArray,
    *,
    cond: Any = None,
    variance: str = "posterior",
    decoder: str = "discretized",
    terms: str = "all",
    centered: bool = True,
    t_batch: int | None = None,
) -> ELBOResult:
    """Ho et al.'s (2020) variational lower bound on $\\log p_\\theta(x_0)$, in nats per example.

    Args:
        model: a `jdiff.Model` on a `jdiff.process.Discrete` schedule (its `x0` prediction at
            $(x_i, t_i = i/N)$ defines the reverse kernels).
        x0: `[B, ...]` data: integers in {0..255} (mapped to [−1, 1] if `centered`, else [0, 1])
            or floats in the data range (on the 8-bit grid for the discretized decoder).
        key: PRNG key for the $x_i \\sim q(x_i|x_0)$ draws (and the sampled steps).
        cond: conditioning passed to the model.
        variance: reverse-kernel variance, `"posterior"` ($\\tilde\\beta_i$, Ho's "fixedsmall") or
            `"beta"` ($\\beta_i$, "fixedlarge").
        decoder: `"discretized"` (8-bit data, eq. 13) or `"gaussian"` (continuous data).
        terms: `"all"` (every step, one $x_i$ each) or `"sampled"` (one random step per example).
        centered: data range [−1, 1] (Ho et al.) or [0, 1] (`False`).
        t_batch: with `terms="all"`, how many steps are evaluated at once (`lax.map` batch size;
            default None evaluates them one by one in a `lax.scan`, the least memory).

    Returns:
        An `ELBOResult` (`elbo[B]`, `prior_kl[B]`, `diffusion_kl[B]`, `reconstruction[B]`,
        `per_step[B, N]` or None).
    """
    if not isinstance(model, Model):
        raise ValueError(f"model must be a jdiff.Model; got {type(model).__name__}")
    if not isinstance(model.process, Discrete):
        raise ValueError(
            "ddpm_elbo needs a model on a jdiff.process.Discrete schedule; got "
            f"{type(model.process).__name__} (use log_likelihood for continuous-time processes)"
        )
    for name, val, valid in (
        ("variance", variance, _VARIANCES),
        ("decoder", decoder, _DECODERS),
        ("terms", terms, _TERMS),
    ):
        if val not in valid:
            raise ValueError(f"unknown {name} {val!r}; valid choices: {list(valid)}")
    x0 = jnp.asarray(x0)
    if x0.ndim < 2:
        raise ValueError(f"x0 must have a batch axis [B, ...]; got shape {x0.shape}")
    if jnp.issubdtype(x0.dtype, jnp.integer):
        x0 = x0.astype(jnp.result_type(float)) / 255.0
        x0 = 2.0 * x0 - 1.0 if centered else x0
    return _elbo(model, x0, key, cond, variance, decoder, terms, centered, t_batch)
