"""Euler–Maruyama on the reverse-time SDE (Song et al. 2021; Anderson 1982).

Reverse SDE: $dx = [f(t)x - g^2(t)\\nabla\\log p_t(x)]\\,dt + g(t)\\,d\\bar W$. From s to t < s with
Δ = s − t and the Brownian increment $\\Delta W \\sim \\mathcal N(0, \\Delta I)$ (per-step `fold_in`
noise, or read from a shared path with `jdiff.solve(..., brownian="tree")`):

$$x_t = x_s - [f(s)x_s - g^2(s)\\hat s(x_s, s)]\\,\\Delta + g(s)\\,\\Delta W.$$

Weak order 1; 1 NFE/step. Strong order: 0.5 for general (multiplicative) noise, but the reverse
SDEs of jdiff's processes have additive noise (g depends on t only), for which the Milstein
correction vanishes and Euler–Maruyama converges strongly with order 1 (Kloeden & Platen 1992,
ch. 10); `strong_order` declares 1, and tests/test_solvers_stochastic.py measures it. The network
is evaluated only at the start of each step, so a grid may end at σ = 0.
"""

from __future__ import annotations

import jax.numpy as jnp

from jdiff.process.base import broadcast_to_batch
from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = ["EulerMaruyama"]


class EulerMaruyama(AbstractDiffusionSolver):
    """Euler–Maruyama on the reverse SDE. Order 1 (weak), strong order 1 (additive noise), 1 NFE."""

    stochastic = True

    def order(self, terms):
        return 1

    def strong_order(self, terms):
        return 1.0

    def update(self, ctx, s, t, x, history):
        p = ctx.process
        dt = s - t
        score = ctx.predict("score", x, s)
        drift = broadcast_to_batch(p.f(s), x) * x - broadcast_to_batch(p.g2(s), x) * score
        diffusion = broadcast_to_batch(jnp.sqrt(p.g2(s)), x)
        return x - drift * dt + diffusion * ctx.brownian_increment(s, t, x), history, 1
