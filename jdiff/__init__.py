"""jdiff: diffusion and flow models in JAX, checked against closed-form truth.

The unified backbone of "The Principles of Diffusion Models" (Lai, Song, Kim, Mitsufuji, Ermon,
2025): forward processes (`jdiff.process`), a `Model` that answers every prediction kind,
closed-form oracles (`jdiff.analytic`), time grids (`jdiff.timesteps`), diffrax samplers
(`jdiff.solvers`) driven by `jdiff.sample` / `jdiff.solve`, losses (`jdiff.loss`), Flax NNX
networks (`jdiff.nn`) and training (`jdiff.train`).
"""

from jdiff import process, solvers, timesteps
from jdiff.model import PREDICTIONS, EDMPrecond, Model
from jdiff.sampling import Solution, sample, solve

__version__ = "0.1.0"

__all__ = [
    "process",
    "solvers",
    "timesteps",
    "Model",
    "EDMPrecond",
    "PREDICTIONS",
    "Solution",
    "sample",
    "solve",
]
