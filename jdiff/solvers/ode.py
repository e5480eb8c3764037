"""Plain Runge–Kutta steps on the probability-flow ODE in t: Euler and Heun.

The PF-ODE (monograph ch. 4, 6) is $dx/dt = v(x, t) = f(t)x - \\tfrac12 g^2(t)\\nabla\\log p_t(x)$,
available from any model as `Model.velocity`. On the linear path (α = 1 − t, σ = t) Euler in the
velocity equals DDIM and Heun equals DPM-Solver-2 (monograph §9.6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdiff.solvers.base import AbstractDiffusionSolver

__all__ = ["Euler", "Heun"]


class Euler(AbstractDiffusionSolver):
    """Euler's method on the PF-ODE in t: $x_t = x_s + (t - s)\\,v(x_s, s)$. Order 1, 1 NFE/step."""

    def order(self, terms):
        return 1

    def update(self, ctx, s, t, x, history):
        return x + (t - s) * ctx.predict("velocity", x, s), history, 1


class Heun(AbstractDiffusionSolver):
    """Heun's method (explicit trapezoid) on the PF-ODE in t. Order 2, 2 NFE/step.

    $\\tilde x = x_s + (t-s)v(x_s, s)$, $x_t = x_s + \\tfrac{t-s}{2}(v(x_s,s) + v(\\tilde x, t))$.
    The step into σ = 0 is the Euler step (1 NFE), so the network is never evaluated at σ = 0.
    """

    def order(self, terms):
        return 2

    def update(self, ctx, s, t, x, history):
        d = t - s
        k1 = ctx.predict("velocity", x, s)
        x_euler = x + d * k1

        def corrected(_):
            k2 = ctx.predict("velocity", x_euler, t)
            return x + 0.5 * d * (k1 + k2), jnp.int32(2)

        def euler(_):
            return x_euler, jnp.int32(1)

        x_t, nfe = jax.lax.cond(ctx.sigma_is_zero(t), euler, corrected, None)
        return x_t, history, nfe
