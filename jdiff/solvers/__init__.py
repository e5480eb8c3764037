"""Samplers as `diffrax.AbstractSolver` subclasses (see `base.AbstractDiffusionSolver`).

| solver | kind | order | NFE/step |
|---|---|---|---|
| `Euler` | PF-ODE in t | 1 | 1 |
| `Heun` | PF-ODE in t | 2 | 2 (1 into σ = 0) |
| `DDIM(eta)` | exponential Euler / DDPM ancestral (η = 1) | 1 | 1 |
| `EulerMaruyama` | reverse SDE | strong 0.5, weak 1 | 1 |
| `Diffrax(solver, rtol, atol)` | adaptive reference | solver's | adaptive |
"""

from jdiff.solvers.adaptive import Diffrax
from jdiff.solvers.base import (
    AbstractDiffusionSolver,
    ProbabilityFlowTerm,
    SolverState,
    StepContext,
)
from jdiff.solvers.ddim import DDIM
from jdiff.solvers.ode import Euler, Heun
from jdiff.solvers.sde import EulerMaruyama

__all__ = [
    "AbstractDiffusionSolver",
    "ProbabilityFlowTerm",
    "SolverState",
    "StepContext",
    "Euler",
    "Heun",
    "DDIM",
    "EulerMaruyama",
    "Diffrax",
]
