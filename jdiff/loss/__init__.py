"""Denoising / flow-matching objectives: target, weighting, time distribution (monograph ch. 6).

`make_loss(apply_fn, process, prediction=..., target=..., time_dist=..., weighting=...)` returns a
pure `loss(params, key, batch) -> (scalar, metrics)`; see `denoising.make_loss`.
"""

from jdiff.loss.denoising import drop_labels, make_edm_loss, make_loss
from jdiff.loss.targets import (
    TARGETS,
    equivalence_factor,
    error_scale,
    target_value,
)
from jdiff.loss.time_dist import (
    TIME_DISTRIBUTIONS,
    AbstractTimeDistribution,
    LogitNormalTime,
    LogNormalTime,
    UniformTime,
    get_time_distribution,
)
from jdiff.loss.weighting import (
    WEIGHTINGS,
    AbstractWeighting,
    CallableWeighting,
    ConstantWeighting,
    EDMWeighting,
    LikelihoodWeighting,
    SNRWeighting,
    get_weighting,
)

__all__ = [
    "make_loss",
    "make_edm_loss",
    "drop_labels",
    "TARGETS",
    "target_value",
    "error_scale",
    "equivalence_factor",
    "TIME_DISTRIBUTIONS",
    "AbstractTimeDistribution",
    "UniformTime",
    "LogNormalTime",
    "LogitNormalTime",
    "get_time_distribution",
    "WEIGHTINGS",
    "AbstractWeighting",
    "ConstantWeighting",
    "SNRWeighting",
    "LikelihoodWeighting",
    "EDMWeighting",
    "CallableWeighting",
    "get_weighting",
]
