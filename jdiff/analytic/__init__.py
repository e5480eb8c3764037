"""Closed-form oracles: data distributions whose diffused marginals are known exactly.

| class | data | exact |
|---|---|---|
| `Gaussian(mean, cov)` | $\\mathcal N(\\mu, \\Sigma)$ | score, denoiser, every prediction, $\\log p_t$, PF-ODE flow map |
| `GaussianMixture(weights, means, covs)` | $\\sum_k\\pi_k\\mathcal N(\\mu_k, \\Sigma_k)$ | score, denoiser, $\\log p_t$, class posteriors, class-conditional predictions |
| `PointSet(points, weights)` | $\\sum_j w_j\\delta_{y_j}$ | memorising denoiser, score, $\\log p_t$ |

Every oracle works for any `jdiff.process` and turns into a `jdiff.model.Model` with
`oracle.model(process, prediction)`, so solvers, likelihoods and guidance can be tested against
closed-form truth (DESIGN §8). `GaussianMixture.conditional_model` takes integer labels as `cond`;
the null label (unconditional) is K, the number of components.
"""

from jdiff.analytic.base import AbstractOracle
from jdiff.analytic.gaussian import Gaussian
from jdiff.analytic.mixture import GaussianMixture
from jdiff.analytic.points import PointSet

__all__ = ["AbstractOracle", "Gaussian", "GaussianMixture", "PointSet"]
