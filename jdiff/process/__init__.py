"""Forward processes $x_t = \\alpha(t) x_0 + \\sigma(t)\\varepsilon$ (see `base.AbstractProcess`).

| class | α(t) | σ(t) |
|---|---|---|
| `VP` | exp(−¼t²Δβ − ½tβ_min) | √(1−α²) |
| `VPCosine` | cos(π/2 (t+s)/(1+s)) / cos(π/2 s/(1+s)) | √(1−α²) |
| `SubVP` | as VP | 1 − α² |
| `VE` | 1 | σ_min (σ_max/σ_min)^t |
| `EDM` | 1 | t |
| `Linear` | 1 − t | t |
| `Trig` | cos(πt/2) | sin(πt/2) |
| `Discrete(betas)` | √ᾱ interpolated in log space | √(1−α²) |
"""

from jdiff.process.base import AbstractProcess, broadcast_to_batch
from jdiff.process.discrete import Discrete, linear_betas
from jdiff.process.flow import Linear, Trig
from jdiff.process.ve import EDM, VE
from jdiff.process.vp import VP, SubVP, VPCosine

PROCESSES = {
    "vp": VP,
    "vp_cosine": VPCosine,
    "subvp": SubVP,
    "ve": VE,
    "edm": EDM,
    "linear": Linear,
    "trig": Trig,
}


def get_process(name: str, **kwargs) -> AbstractProcess:
    """Build a process by name (`"vp"`, `"vp_cosine"`, `"subvp"`, `"ve"`, `"edm"`, `"linear"`,
    `"trig"`); keyword arguments go to the constructor. Raises `ValueError` for unknown names."""
    try:
        cls = PROCESSES[name]
    except KeyError:
        raise ValueError(
            f"unknown process {name!r}; valid choices: {sorted(PROCESSES)} (or Discrete(betas))"
        ) from None
    return cls(**kwargs)


__all__ = [
    "AbstractProcess",
    "broadcast_to_batch",
    "VP",
    "VPCosine",
    "SubVP",
    "VE",
    "EDM",
    "Linear",
    "Trig",
    "Discrete",
    "linear_betas",
    "PROCESSES",
    "get_process",
]
