"""Shared machinery of the guidance transformers: how a guided `Model` is built.

A guided model is an ordinary `jdiff.Model` (DESIGN §3 "Guidance": functions from Model to Model),
so every solver, likelihood and sweep accepts it unchanged:

    Model(apply_fn=<hashable guided apply>, params=(inner_model, guidance_params),
          process=inner.process, prediction=inner.prediction)

* `apply_fn` is a frozen dataclass holding only *structural* choices (whether a guidance interval
  is used, a loss function, a classifier's apply function); it is a static, hashable field.
* `params` holds the inner `Model` itself (its network params, process and preconditioning) and a
  dict of guidance parameters (scale, interval bounds, labels, measurements y, ...). Everything that
  may vary between calls is an array leaf here, so new values never recompile a jitted sampler.
* The guided output has the inner model's prediction kind (the inner preconditioning, if any, is
  applied inside), so no conversion through a division by α or σ is added by guidance.
* `apply_fn.nfe_per_call` says how many network evaluations one call costs; `Model.nfe_per_call`
  reads it and the solvers multiply their NFE by it (DESIGN §2 "NFE").

Score-space guidance (classifier, training-free, inverse problems) adds a term $\\delta$ to the score,
$\\tilde s = s + \\delta$. In the other kinds the same change reads (Tweedie,
$\\hat x_0 = (x + \\sigma^2 s)/\\alpha$, $\\hat\\varepsilon = -\\sigma s$):
$\\delta\\varepsilon = -\\sigma\\delta$, $\\delta x_0 = (\\sigma^2/\\alpha)\\delta$,
$\\delta u = \\alpha'\\delta x_0 + \\sigma'\\delta\\varepsilon$ (velocity),
$\\delta v = \\alpha\\delta\\varepsilon - \\sigma\\delta x_0$ (Salimans–Ho v); see `add_score`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.model import Model, from_x0_eps
from jdiff.process.base import AbstractProcess, broadcast_to_batch

__all__ = ["add_score", "guided_model", "interval_params", "in_interval", "check_model"]


def check_model(model: Any, what: str) -> Model:
    """Raise `ValueError` unless `model` is a `jdiff.Model`; return it."""
    if not isinstance(model, Model):
        raise ValueError(f"{what} takes a jdiff.Model; got {type(model).__name__}")
    return model


def add_score(
    process: AbstractProcess, kind: str, out: Array, x: Array, t: ArrayLike, delta: Array
) -> Array:
    """A prediction `out` of kind `kind` at `(x, t)` changed so that its score gains `delta`.

    Args:
        process: the forward process.
        kind: the prediction kind of `out` (`jdiff.model.PREDICTIONS`).
        out: `[B, ...]` the model's prediction of kind `kind`.
        x: `[B, ...]` the noisy input $x_t$.
        t: `[B]` or scalar times.
        delta: `[B, ...]` the score change $\\delta$ (e.g. $s\\,\\nabla\\log p_t(c\\mid x)$).

    Returns:
        `[B, ...]` the prediction of kind `kind` whose score is $\\nabla\\log p_t + \\delta$.
        `"eps"` and `"score"` need no division; `"x0"`, `"velocity"` and `"v"` divide by α
        (the guided x₀ is undefined where α = 0).
    """
    sig = broadcast_to_batch(process.sigma(t), x)
    if kind == "score":
        return out + delta
    if kind == "eps":
        return out - sig * delta
    a = broadcast_to_batch(process.alpha(t), x)
    d_x0 = sig**2 / a * delta
    d_eps = -sig * delta
    return out + from_x0_eps(process, kind, d_x0, d_eps, x, t)


def interval_params(interval: tuple[float, float] | None, dtype=None) -> dict[str, Array]:
    """Guidance-interval bounds as array params (`{}` when `interval` is None).

    Raises `ValueError` unless `interval` is a pair `(t_lo, t_hi)` with `t_lo <= t_hi`.
    """
    if interval is None:
        return {}
    try:
        lo, hi = interval
    except (TypeError, ValueError):
        raise ValueError(
            f"interval must be None or a pair (t_lo, t_hi); got {interval!r}"
        ) from None
    lo = jnp.asarray(lo, dtype or jnp.result_type(float))
    hi = jnp.asarray(hi, dtype or jnp.result_type(float))
    if not isinstance(lo, jax.core.Tracer) and not isinstance(hi, jax.core.Tracer):
        if not float(lo) <= float(hi):
            raise ValueError(f"interval needs t_lo <= t_hi; got ({float(lo)}, {float(hi)})")
    return {"t_lo": lo, "t_hi": hi}


def in_interval(g: dict, t: Array, x: Array) -> Array:
    """Boolean mask broadcastable to `x`: True where $t_{lo} \\le t \\le t_{hi}$."""
    t = jnp.broadcast_to(t, x.shape[:1])
    inside = (t >= g["t_lo"].astype(t.dtype)) & (t <= g["t_hi"].astype(t.dtype))
    return broadcast_to_batch(inside, x)


def guided_model(apply_fn: Any, inner: Model, guidance_params: dict) -> Model:
    """`Model(apply_fn, (inner, guidance_params), inner.process, inner.prediction)`."""
    return Model(apply_fn, (inner, guidance_params), inner.process, inner.prediction)


def broadcast_labels(labels: ArrayLike, batch: int, what: str = "labels") -> Array:
    """Integer labels, scalar or `[B]`, broadcast to `[B]` (ValueError on other shapes)."""
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{what} must be integers; got dtype {labels.dtype}")
    if not (labels.ndim == 0 or labels.shape == (batch,)):
        raise ValueError(
            f"{what} must be a scalar or have shape [B] = [{batch}]; got {labels.shape}"
        )
    return jnp.broadcast_to(labels, (batch,))
