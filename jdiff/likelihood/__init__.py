"""Likelihoods: the probability-flow ODE log-likelihood, bits/dim, and the DDPM variational bound.

| function | computes |
|---|---|
| `log_likelihood(model, x, ...)` | $\\log p_{t_{min}}(x)$ by the augmented PF-ODE (exact or Hutchinson divergence) |
| `bits_per_dim(model, x, ...)` | bits/dim of 8-bit data with uniform dequantization (score_sde's offset) |
| `ddpm_elbo(model, x0, key, ...)` | Ho et al.'s discrete-time variational bound for `Discrete` schedules |
"""

from jdiff.likelihood.bpd import (
    BitsPerDim,
    bits_per_dim,
    bpd_from_log_prob,
    bpd_offset,
    dequantize,
)
from jdiff.likelihood.elbo import ELBOResult, ddpm_elbo, discretized_gaussian_log_prob
from jdiff.likelihood.ode import DIVERGENCES, PROBES, LikelihoodResult, log_likelihood

__all__ = [
    "DIVERGENCES",
    "PROBES",
    "LikelihoodResult",
    "log_likelihood",
    "BitsPerDim",
    "bits_per_dim",
    "bpd_from_log_prob",
    "bpd_offset",
    "dequantize",
    "ELBOResult",
    "ddpm_elbo",
    "discretized_gaussian_log_prob",
]
