"""jdiff: diffusion and flow models in JAX, checked against closed-form truth.

The unified backbone of "The Principles of Diffusion Models" (Lai, Song, Kim, Mitsufuji, Ermon,
2025):

| namespace | holds |
|---|---|
| `jdiff.process` | forward processes (VP, VPCosine, SubVP, VE, EDM, Linear, Trig, Discrete) |
| `jdiff.Model` | apply function + params + process + prediction, exact conversions |
| `jdiff.analytic` | closed-form oracles (Gaussian, GaussianMixture, PointSet) |
| `jdiff.timesteps` | time grids |
| `jdiff.solvers` | diffrax solvers; `jdiff.sample` / `jdiff.solve` drive them |
| `jdiff.loss` | the training-loss template |
| `jdiff.likelihood` | exact PF-ODE log-likelihood, bits/dim, DDPM ELBO |
| `jdiff.guidance` | classifier-free, classifier, training-free and inverse-problem guidance |
| `jdiff.nn`, `jdiff.train` | Flax NNX networks; train state, step, checkpoints, loop |
| `jdiff.data`, `jdiff.metrics` | 2-D data sets; two-sample metrics and exact mixture NLL |

`jdiff.nn`, `jdiff.train` and `jdiff.guidance` import Flax/orbax and load on first use
(`from jdiff import nn`).
"""

from jdiff import analytic, data, likelihood, loss, metrics, process, solvers, timesteps
from jdiff.model import PREDICTIONS, EDMPrecond, Model
from jdiff.sampling import Solution, sample, solve

__version__ = "0.1.0"

__all__ = [
    "analytic",
    "data",
    "likelihood",
    "loss",
    "metrics",
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
