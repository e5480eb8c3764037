"""Samplers as `diffrax.AbstractSolver` subclasses (see `base.AbstractDiffusionSolver`).

Every solver works with every process and prediction kind through the Model's exact conversions,
declares its order (and strong order if stochastic) and counts its network evaluations (NFE).

| solver | kind | order | NFE/step |
|---|---|---|---|
| `Euler` | PF-ODE in t | 1 | 1 |
| `Heun` | PF-ODE in t | 2 | 2 (1 into σ = 0) |
| `DDIM(eta)` | exponential Euler; η = 1 is DDPM ancestral | 1 | 1 |
| `DPMSolver(order)` | single-step exponential integrator, noise form (Lu et al. 2022) | 1–3 | order |
| `DPMSolverPP(order, multistep)` | data form: 2S, 2M, 3M (Lu et al. 2022b) | see class | 1 (multistep) |
| `UniPC(order, variant, corrector)` | unified predictor–corrector (Zhao et al. 2023) | p (+1 with UniC) | 1 |
| `DEIS(order)` | ρ-Adams–Bashforth (Zhang & Chen 2023) | order | 1 |
| `EDMHeun`, `EDMStochastic` | Karras et al. 2022 Alg. 1 / Alg. 2 | 2 | 2 |
| `Ancestral` | DDPM posterior step | 1 | 1 |
| `EulerMaruyama` | reverse SDE | weak 1, strong 1 (additive noise) | 1 |
| `SDEDPMSolverPP(order)` | SDE-DPM-Solver++ 1 / 2M | 1 | 1 |
| `PredictorCorrector(p, Langevin(...))`, `AnnealedLangevin` | Song et al. 2021; Song & Ermon 2019 | predictor's | + corrector steps |
| `Diffrax(solver, rtol, atol)` | adaptive reference | solver's | adaptive |
"""

from jdiff.solvers.adaptive import Diffrax
from jdiff.solvers.ancestral import Ancestral
from jdiff.solvers.base import (
    AbstractDiffusionSolver,
    ProbabilityFlowTerm,
    SolverState,
    StepContext,
)
from jdiff.solvers.ddim import DDIM
from jdiff.solvers.deis import DEIS
from jdiff.solvers.dpm_solver import DPMSolver
from jdiff.solvers.dpm_solver_pp import DPMSolverPP
from jdiff.solvers.edm import EDMHeun, EDMStochastic
from jdiff.solvers.langevin import AnnealedLangevin, Langevin, PredictorCorrector
from jdiff.solvers.ode import Euler, Heun
from jdiff.solvers.sde import EulerMaruyama
from jdiff.solvers.sde_dpm import SDEDPMSolverPP
from jdiff.solvers.unipc import UniPC

__all__ = [
    "AbstractDiffusionSolver",
    "ProbabilityFlowTerm",
    "SolverState",
    "StepContext",
    "Euler",
    "Heun",
    "DDIM",
    "DPMSolver",
    "DPMSolverPP",
    "UniPC",
    "DEIS",
    "EDMHeun",
    "EDMStochastic",
    "Ancestral",
    "EulerMaruyama",
    "SDEDPMSolverPP",
    "Langevin",
    "PredictorCorrector",
    "AnnealedLangevin",
    "Diffrax",
]
