"""Training-free guidance for a differentiable loss on the denoised estimate (FreeDoM / DPS / UGD).

With the denoiser $\\hat x_0(x_t) = \\mathbb E[x_0 \\mid x_t]$ and a loss $\\ell(x_0, c)$, the
surrogate likelihood $\\tilde p_t(c \\mid x_t) \\propto \\exp(-\\eta\\,\\ell(\\hat x_0(x_t), c))$ gives the
noise-space guidance term (monograph §8, "training-free, noise space"; Yu et al. 2023 FreeDoM,
Chung et al. 2023 DPS, Bansal et al. 2023 UGD)

$$G_t = -\\eta\\,\\nabla_{x_t}\\ell(\\hat x_0(x_t), c), \\qquad \\tilde s = \\nabla\\log p_t(x_t) + G_t,
\\qquad \\tilde\\varepsilon = \\hat\\varepsilon - \\sigma_t G_t,$$

computed by back-propagating through the denoiser (one forward pass, one VJP).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from jdiff.guidance.base import add_score, check_model, guided_model, in_interval, interval_params
from jdiff.model import Model, to_x0_eps

__all__ = ["training_free"]


@dataclasses.dataclass(frozen=True)
class _UserLoss:
    """Adapter of a user loss `loss_fn(x0, cond[, loss_params]) -> [B]`."""

    fn: Callable
    has_params: bool

    def __call__(self, x0, x, t, cond, process, lp):
        return self.fn(x0, cond, lp) if self.has_params else self.fn(x0, cond)


@dataclasses.dataclass(frozen=True)
class DenoiserGradApply:
    """Hashable apply function of a model guided by $G_t = -\\eta\\nabla_{x_t}\\ell(\\hat x_0(x_t))$.

    `params = (inner, g)` with `g = {"scale", "loss_params", ["t_lo", "t_hi"]}`.
    `loss(x0[B, ...], x[B, ...], t[B], cond, process, loss_params) -> [B]` is the per-example
    loss; examples must be independent (a network that mixes examples breaks the per-example
    gradient).
    """

    loss: Callable
    nfe_per_call: int
    has_interval: bool

    def __call__(self, params: tuple[Model, dict], x: Array, t: Array, cond: Any = None):
        inner, g = params

        def denoise(xx):
            out = inner.raw(xx, t, cond)
            x0, _ = to_x0_eps(inner.process, inner.prediction, out, xx, t)
            return out, x0

        (out, x0), vjp = jax.vjp(denoise, x)

        def total(z):
            per_ex = self.loss(z, x, t, cond, inner.process, g["loss_params"])
            return jnp.sum(per_ex)

        dl_dx0 = jax.grad(total)(x0)
        (dl_dx,) = vjp((jnp.zeros_like(out), dl_dx0))
        delta = -g["scale"].astype(out.dtype) * dl_dx
        if self.has_interval:
            delta = jnp.where(in_interval(g, t, x), delta, 0.0)
        return add_score(inner.process, inner.prediction, out, x, t, delta)


def training_free(
    model: Model,
    loss_fn: Callable,
    scale: ArrayLike = 1.0,
    *,
    loss_params: PyTree = None,
    interval: tuple[float, float] | None = None,
) -> Model:
    """Training-free guidance $\\tilde s = s - \\eta\\nabla_{x_t}\\ell(\\hat x_0(x_t), c)$.

    Args:
        model: the diffusion `jdiff.Model`.
        loss_fn: hashable per-example loss `loss_fn(x0[B, ...], cond) -> [B]`, or
            `loss_fn(x0, cond, loss_params) -> [B]` when `loss_params` is given (put values that
            change between calls in `loss_params` so they do not recompile; a new Python function
            object does recompile). Must be differentiable in `x0`.
        scale: the step size η (constant over time; "step rule" = constant η, as in FreeDoM's
            simplest form). Time-dependent schedules can be built into `loss_fn` via `cond`.
        loss_params: optional pytree passed to `loss_fn` (e.g. a target).
        interval: optional `(t_lo, t_hi)`: guide only for times inside it.

    Returns:
        A `jdiff.Model` with the inner model's process and prediction kind. The denoiser is
        evaluated at every call (its x̂₀ must exist: with "eps" models that needs α > 0).

    NFE: `nfe_per_call` equals the inner model's (one forward evaluation). The VJP through the
    network costs roughly two more forward passes of compute and is not counted as NFE.

    Reference: Yu et al. 2023 (FreeDoM); Chung et al. 2023 (DPS); Bansal et al. 2023 (UGD);
    monograph §8.
    """
    model = check_model(model, "training_free")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable; got {type(loss_fn).__name__}")
    g = {
        "scale": jnp.asarray(scale, jnp.result_type(float)),
        "loss_params": loss_params,
        **interval_params(interval),
    }
    loss = _UserLoss(loss_fn, loss_params is not None)
    apply = DenoiserGradApply(loss, model.nfe_per_call, interval is not None)
    return guided_model(apply, model, g)
