"""`Diffrax`: any diffrax ODE solver with an adaptive step-size controller on the PF-ODE.

Used for tight reference solutions (e.g. `Diffrax(diffrax.Dopri8(), rtol=1e-10, atol=1e-10)` in
float64). The grid only gives the endpoints (and the save times when a trajectory is asked for).
The PF-ODE velocity is evaluated at the final time, so the grid must not end where σ = 0 for
processes whose velocity is singular there (VP: σ' → ∞ as t → 0).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp

__all__ = ["Diffrax"]


class Diffrax(eqx.Module):
    """An adaptive diffrax ODE solver for the probability-flow ODE.

    Args:
        solver: a `diffrax.AbstractAdaptiveSolver` (default `diffrax.Tsit5()`).
        rtol, atol: tolerances of the `diffrax.PIDController`.
        max_steps: step budget of the adaptive solve.
        dtmax: optional maximum step size (in t).
    """

    solver: diffrax.AbstractSolver = eqx.field(default_factory=diffrax.Tsit5)
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = eqx.field(default=16384, static=True)
    dtmax: float | None = None

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                f"Diffrax needs an adaptive diffrax solver (e.g. Tsit5, Dopri5, Dopri8); "
                f"got {type(self.solver).__name__}"
            )

    def order(self, terms=None):
        """The wrapped solver's order."""
        return self.solver.order(terms)

    def controller(self):
        """The `diffrax.PIDController` used for the solve."""
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol, dtmax=self.dtmax)

    def nfe(self, num_steps):
        """Network evaluations for `num_steps` attempted steps (Butcher tableau stage count)."""
        tableau = getattr(self.solver, "tableau", None)
        if tableau is None:
            return jnp.asarray(-1, jnp.int32)
        stages = len(tableau.c) + 1
        fsal = int(bool(tableau.fsal))
        return (num_steps * (stages - fsal) + fsal).astype(jnp.int32)
