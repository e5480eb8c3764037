"""Euler–Maruyama on the reverse-time SDE (Song et al. 2021; Anderson 1982).

Reverse SDE: $dx = [f(t)x - g^2(t)\\nabla\\log p_t(x)]\\,dt + g(t)\\,d\\bar W$. From s to t < s with
Δ = s − t and $z \\sim \\mathcal N(0, I)$ (a pure function of the key and the step index):

$$x_t = x_s - [f(s)x_s - g^2(s)\\hat s(x_s, s)]\\,\\Delta + g(s)\\sqrt{\\Delta}\\,z.$$

Weak order 1, strong order 0.5; 1 NFE/step. The network is evaluated only at the start of each
step, so a grid may end at σ = 0.
"""

from __future__ import annotations

import jax.numpy as jnp

from jdiff.process.base import broadcast_to_batch
from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = ["EulerMaruyama"]


class EulerMaruyama(AbstractDiffusionSolver):
    """Euler–Maruyama on the reverse SDE. Order 1 (weak), strong order 0.5, 1 NFE/step."""

    stochastic = True

    def order(self, terms):
        return 1

    def strong_order(self, terms):
        return 0.5

    def update(self, ctx, s, t, x, history):
        p = ctx.process
        dt = s - t
        score = ctx.predict("score", x, s)
        drift = broadcast_to_batch(p.f(s), x) * x - broadcast_to_batch(p.g2(s), x) * score
        diffusion = broadcast_to_batch(jnp.sqrt(p.g2(s) * dt), x)
        return x - drift * dt + diffusion * ctx.normal(x), history, 1
