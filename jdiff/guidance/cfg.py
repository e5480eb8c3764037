"""Classifier-free guidance (Ho & Salimans 2022) as a Model transformer.

One network trained with label dropout predicts both $\\varepsilon(x, c)$ and
$\\varepsilon(x, \\varnothing)$ (the null label ∅). With guidance scale $s$ (DESIGN §2; the
monograph's ω, diffusers' `guidance_scale`; Ho & Salimans' $w = s - 1$):

$$\\tilde\\varepsilon = \\varepsilon(x, \\varnothing) + s\\,[\\varepsilon(x, c) - \\varepsilon(x, \\varnothing)],
\\qquad \\tilde s = s\\,\\nabla\\log p_t(x \\mid c) + (1 - s)\\,\\nabla\\log p_t(x)
= \\nabla\\log p_t(x) + s\\,\\nabla\\log p_t(c \\mid x),$$

the score of the tilted density $p_t(x)\\,p_t(c\\mid x)^s$ (monograph §8, "tilted family"); s = 1
is plain conditional sampling and s = 0 unconditional. Every prediction kind is affine in
$(\\hat x_0, \\hat\\varepsilon)$ with coefficients that depend only on $(x, t)$ and the weights
$(1 - s, s)$ sum to 1, so the same combination applied to the network's own output kind is exactly
the guided model in every kind; that is what `classifier_free` does (no division by α or σ added).

Optional guidance interval (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval"):
guidance acts only for $t_{lo} \\le t \\le t_{hi}$ and the model is plain conditional elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.guidance.base import check_model, guided_model, in_interval, interval_params
from jdiff.model import Model

__all__ = ["classifier_free"]


@dataclasses.dataclass(frozen=True)
class _CFGApply:
    """Hashable apply function of a classifier-free-guided model; `params = (inner, g)`."""

    nfe_per_call: int
    has_interval: bool
    batched: bool

    def __call__(self, params: tuple[Model, dict], x: Array, t: Array, cond: Any = None):
        inner, g = params
        if cond is None:
            raise ValueError("classifier-free guidance needs cond=... (the labels c)")
        b = x.shape[0]
        cond = jnp.asarray(cond)
        if cond.ndim == 0 or cond.shape[0] != b:
            cond = jnp.broadcast_to(cond, (b,) + cond.shape)
        null = jnp.broadcast_to(g["null_label"].astype(cond.dtype), cond.shape)
        if self.batched:
            out = inner.raw(
                jnp.concatenate([x, x]),
                jnp.concatenate([t, t]),
                jnp.concatenate([cond, null]),
            )
            out_c, out_u = out[:b], out[b:]
        else:
            out_c = inner.raw(x, t, cond)
            out_u = inner.raw(x, t, null)
        s = g["scale"].astype(out_c.dtype)
        guided = out_u + s * (out_c - out_u)
        if self.has_interval:
            guided = jnp.where(in_interval(g, t, x), guided, out_c)
        return guided


def classifier_free(
    model: Model,
    scale: ArrayLike,
    *,
    null_label: ArrayLike,
    interval: tuple[float, float] | None = None,
    batched: bool = True,
) -> Model:
    """Classifier-free guidance: the model $\\varepsilon(x,\\varnothing) + s(\\varepsilon(x,c) - \\varepsilon(x,\\varnothing))$.

    Args:
        model: a conditional `jdiff.Model` whose `cond` is a label array (scalar or `[B, ...]`)
            and which accepts `null_label` as "no condition" (e.g. `jdiff.nn.MLP(num_classes=K)`
            trained with `make_loss(cond_dropout=...)`, null label K).
        scale: the guidance scale s (scalar; may be traced). s = 1: conditional; s = 0:
            unconditional.
        null_label: the label ∅ (int, or an array broadcastable to `cond`).
        interval: optional `(t_lo, t_hi)`: guide only for $t_{lo} \\le t \\le t_{hi}$, plain
            conditional outside.
        batched: evaluate conditional and unconditional predictions in one network call on a
            `[2B, ...]` batch (default); False makes two `[B, ...]` calls (for networks whose
            output depends on the batch, or to halve peak memory).

    Returns:
        A `jdiff.Model` with the inner model's process and prediction kind; call it with
        `cond` = labels `[B]` (or a scalar). `params = (model, {"scale", "null_label",
        ["t_lo", "t_hi"]})`, so new scales, labels or bounds never recompile.

    NFE: `nfe_per_call` = 2 × the inner model's: both predictions are computed on every call,
    also outside the guidance interval (the interval is a `jnp.where` selection, which evaluates
    both branches; this is what actually runs, and what is counted).

    Raises:
        ValueError: if `model` is not a `jdiff.Model` or `interval` is malformed.

    Reference: Ho & Salimans 2022, "Classifier-free diffusion guidance"; monograph §8.
    """
    model = check_model(model, "classifier_free")
    scale = jnp.asarray(scale)
    if not jnp.issubdtype(scale.dtype, jnp.floating):
        scale = scale.astype(jnp.result_type(float))
    g = {"scale": scale, "null_label": jnp.asarray(null_label), **interval_params(interval)}
    apply = _CFGApply(2 * model.nfe_per_call, interval is not None, bool(batched))
    return guided_model(apply, model, g)
