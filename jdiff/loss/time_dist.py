"""Training-time distributions $p_{time}$ (monograph §6.2; design axis (C) of the loss template).

Each is an immutable `equinox.Module` with `sample(key, shape, dtype=None) -> t[shape]`.

| name | class | law |
|---|---|---|
| `"uniform"` | `UniformTime` | $t \\sim U[t_{min}, t_{max})$ |
| `"lognormal"` | `LogNormalTime` | $\\ln\\bar\\sigma \\sim \\mathcal N(P_{mean}, P_{std}^2)$, $\\bar\\sigma = \\sigma/\\alpha$ (EDM) |
| `"logit_normal"` | `LogitNormalTime` | $t = t_{min} + (t_{max}-t_{min})\\,\\mathrm{sigmoid}(\\mathcal N(m, s^2))$ (SD3) |
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from jdiff.process.base import AbstractProcess

__all__ = [
    "AbstractTimeDistribution",
    "UniformTime",
    "LogNormalTime",
    "LogitNormalTime",
    "TIME_DISTRIBUTIONS",
    "get_time_distribution",
]


def _dtype(dtype):
    return dtype or jnp.result_type(float)


class AbstractTimeDistribution(eqx.Module):
    """A distribution of training times on a process's interval."""

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype=None) -> Array:
        """Draw times of shape `shape` (e.g. `(B,)`), dtype `dtype` (default float)."""


class UniformTime(AbstractTimeDistribution):
    """Uniform time $t \\sim U[t_{min}, t_{max})$ (Ho et al. 2020; Song et al. 2021; flow matching).

    Args:
        t_min, t_max: the interval (use `UniformTime.of(process)` for the process's own).
    """

    t_min: float = eqx.field(static=True)
    t_max: float = eqx.field(static=True)

    def __check_init__(self):
        if not self.t_min < self.t_max:
            raise ValueError(f"need t_min < t_max; got {self.t_min}, {self.t_max}")

    @classmethod
    def of(cls, process: AbstractProcess) -> UniformTime:
        """Uniform on `[process.t_min, process.t_max)`."""
        return cls(process.t_min, process.t_max)

    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype=None) -> Array:
        """Draw `shape` uniform times."""
        return jax.random.uniform(key, shape, _dtype(dtype), self.t_min, self.t_max)


class LogNormalTime(AbstractTimeDistribution):
    """EDM's log-normal noise levels (Karras et al. 2022, "Elucidating the design space", Tab. 1).

    $\\ln\\bar\\sigma \\sim \\mathcal N(P_{mean}, P_{std}^2)$ with $\\bar\\sigma = \\sigma/\\alpha = e^{-\\lambda}$,
    mapped to time by $t = $ `process.t_of_lam`$(-\\ln\\bar\\sigma)$ and clipped into
    `[process.t_min, process.t_max]`. For the EDM process (α = 1, σ = t) this is exactly
    $\\ln t \\sim \\mathcal N(P_{mean}, P_{std}^2)$.

    Args:
        process: the forward process (gives $t(\\lambda)$ and the interval).
        p_mean: $P_{mean}$ (EDM: −1.2).
        p_std: $P_{std}$ (EDM: 1.2).
    """

    process: AbstractProcess
    p_mean: float = eqx.field(static=True, default=-1.2)
    p_std: float = eqx.field(static=True, default=1.2)

    def __check_init__(self):
        if not self.p_std > 0:
            raise ValueError(f"need p_std > 0; got {self.p_std}")

    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype=None) -> Array:
        """Draw `shape` times with log-normal $\\bar\\sigma$."""
        log_sigma_bar = self.p_mean + self.p_std * jax.random.normal(key, shape, _dtype(dtype))
        t = self.process.t_of_lam(-log_sigma_bar).astype(_dtype(dtype))
        return jnp.clip(t, self.process.t_min, self.process.t_max)


class LogitNormalTime(AbstractTimeDistribution):
    """Logit-normal time (Esser et al. 2024, "Scaling rectified flow transformers", SD3 §3.1).

    $t = t_{min} + (t_{max} - t_{min})\\,\\mathrm{sigmoid}(u)$, $u \\sim \\mathcal N(m, s^2)$; SD3 uses
    m = 0, s = 1 on the linear path (MeanFlow: m = −0.4, s = 1).

    Args:
        t_min, t_max: the interval (use `LogitNormalTime.of(process, ...)` for the process's own).
        mean: $m$, the location of the logit.
        std: $s$, the scale of the logit.
    """

    t_min: float = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    mean: float = eqx.field(static=True, default=0.0)
    std: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if not self.t_min < self.t_max:
            raise ValueError(f"need t_min < t_max; got {self.t_min}, {self.t_max}")
        if not self.std > 0:
            raise ValueError(f"need std > 0; got {self.std}")

    @classmethod
    def of(cls, process: AbstractProcess, mean: float = 0.0, std: float = 1.0) -> LogitNormalTime:
        """Logit-normal on `[process.t_min, process.t_max]`."""
        return cls(process.t_min, process.t_max, mean, std)

    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype=None) -> Array:
        """Draw `shape` logit-normal times in `[t_min, t_max]`."""
        u = self.mean + self.std * jax.random.normal(key, shape, _dtype(dtype))
        return self.t_min + (self.t_max - self.t_min) * jax.nn.sigmoid(u)


TIME_DISTRIBUTIONS = ("uniform", "lognormal", "logit_normal")


def get_time_distribution(
    name: str | AbstractTimeDistribution, process: AbstractProcess
) -> AbstractTimeDistribution:
    """Build a time distribution by name (`TIME_DISTRIBUTIONS`) with default parameters on
    `process`; an `AbstractTimeDistribution` passes through. Raises `ValueError` otherwise."""
    if isinstance(name, AbstractTimeDistribution):
        return name
    if name == "uniform":
        return UniformTime.of(process)
    if name == "lognormal":
        return LogNormalTime(process)
    if name == "logit_normal":
        return LogitNormalTime.of(process)
    raise ValueError(
        f"unknown time distribution {name!r}; valid choices: {list(TIME_DISTRIBUTIONS)} "
        "or an AbstractTimeDistribution"
    )
