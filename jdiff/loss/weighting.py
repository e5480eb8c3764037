"""Loss weightings $\\omega(t)$ (monograph §3.0 axis (D), §6.1–6.2).

A weighting is an immutable `equinox.Module` called as `weighting(process, t) -> ω[B]`, with a
`native` target: the target in which ω is stated. When the loss regresses another target K, ω is
converted by the exact per-sample equivalence (`targets.equivalence_factor`), so the loss value —
the objective — does not depend on the parameterisation. `native=None` means "apply ω literally to
whatever target is regressed".

| name | class | ω | native |
|---|---|---|---|
| `"constant"` | `ConstantWeighting` | 1 | None (literal) |
| `"snr"` | `SNRWeighting` | $\\alpha^2/\\sigma^2 = e^{2\\lambda}$ | None (literal) |
| `"likelihood"` | `LikelihoodWeighting` | $g^2(t)$ | `"score"` |
| `"edm"` | `EDMWeighting` | $(\\alpha^2\\sigma_d^2 + \\sigma^2)/(\\sigma\\sigma_d)^2$ | `"x0"` |

Conversions worth knowing: likelihood weighting on the eps target is $g^2/\\sigma^2$
($\\|\\hat s - s\\|^2 g^2 = \\|\\hat\\varepsilon-\\varepsilon\\|^2 g^2/\\sigma^2$); SNR weighting on the x0 target equals
the constant-weighted eps loss (Ho et al.'s $L_{simple}$).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.loss.targets import check_target
from jdiff.process.base import AbstractProcess

__all__ = [
    "AbstractWeighting",
    "ConstantWeighting",
    "SNRWeighting",
    "LikelihoodWeighting",
    "EDMWeighting",
    "CallableWeighting",
    "WEIGHTINGS",
    "get_weighting",
]


class AbstractWeighting(eqx.Module):
    """A weighting $\\omega(t)$ stated for the target `native` (None: for any target, literally)."""

    native: eqx.AbstractVar[str | None]

    def __check_init__(self):
        if self.native is not None:
            check_target(self.native)

    @abc.abstractmethod
    def __call__(self, process: AbstractProcess, t: ArrayLike) -> Array:
        """ω at times `t` (`[B]` or scalar), shaped like `t`."""


class ConstantWeighting(AbstractWeighting):
    """ω = 1 on the regressed target (Ho et al. 2020's $L_{simple}$ with the eps target; flow
    matching with the velocity target).

    Args:
        native: target the constant weight is stated for (default None: whichever is regressed).
    """

    native: str | None = eqx.field(static=True, default=None)

    def __call__(self, process: AbstractProcess, t: ArrayLike) -> Array:
        """Ones shaped like `t`."""
        return jnp.ones_like(process.sigma(t))


class SNRWeighting(AbstractWeighting):
    """Signal-to-noise ratio $\\omega = \\mathrm{SNR}(t) = \\alpha^2/\\sigma^2 = e^{2\\lambda}$
    (Kingma et al. 2021, VDM; with the x0 target it equals the constant-weighted eps loss).

    Args:
        native: target the weight is stated for (default None: whichever is regressed).
    """

    native: str | None = eqx.field(static=True, default=None)

    def __call__(self, process: AbstractProcess, t: ArrayLike) -> Array:
        """$e^{2\\lambda(t)}$ shaped like `t`."""
        return jnp.exp(2.0 * process.lam(t))


class LikelihoodWeighting(AbstractWeighting):
    """Likelihood weighting $\\omega = g^2(t)$ for the score target (Song, Durkan, Murray, Ermon 2021,
    "Maximum likelihood training of score-based diffusion models").

    With uniform t on $[t_{min}, t_{max}]$, $\\tfrac12 (t_{max}-t_{min})\\,E_t[g^2\\|\\hat s - s\\|^2_{sum}]$
    bounds the negative log-likelihood up to a constant (sum over data dims). For the eps target the
    loss converts this to $g^2/\\sigma^2$ (`native="score"`).
    """

    native: str | None = eqx.field(static=True, default="score")

    def __call__(self, process: AbstractProcess, t: ArrayLike) -> Array:
        """$g^2(t)$ shaped like `t`."""
        return process.g2(t)


class EDMWeighting(AbstractWeighting):
    """EDM weighting for the x0 (denoiser) target (Karras et al. 2022, eq. 8 and Tab. 1).

    EDM: $\\lambda(\\sigma) = (\\sigma^2 + \\sigma_d^2)/(\\sigma\\sigma_d)^2$. For a general process with
    $x_t = \\alpha(x_0 + \\bar\\sigma\\varepsilon)$, $\\bar\\sigma = \\sigma/\\alpha$, use
    $\\lambda(\\bar\\sigma) = (\\bar\\sigma^2 + \\sigma_d^2)/(\\bar\\sigma\\sigma_d)^2
    = (\\alpha^2\\sigma_d^2 + \\sigma^2)/(\\sigma\\sigma_d)^2 = 1/c_{out}^2$ (the form computed; finite at α = 0):
    the preconditioned network's own error gets unit weight (monograph App. D.6).

    Args:
        sigma_data: σ_d (0.5 in EDM).
        native: target the weight is stated for (default `"x0"`).
    """

    native: str | None = eqx.field(static=True)
    sigma_data: float = eqx.field(static=True)

    def __init__(self, sigma_data: float = 0.5, native: str | None = "x0"):
        if not sigma_data > 0:
            raise ValueError(f"need sigma_data > 0; got {sigma_data}")
        self.sigma_data = float(sigma_data)
        self.native = native

    def __call__(self, process: AbstractProcess, t: ArrayLike) -> Array:
        """$(\\alpha^2\\sigma_d^2 + \\sigma^2)/(\\sigma\\sigma_d)^2$ shaped like `t`."""
        a = process.alpha(t)
        s = process.sigma(t)
        sd = self.sigma_data
        return (a**2 * sd**2 + s**2) / (s * sd) ** 2


class CallableWeighting(AbstractWeighting):
    """A user weighting `fn(t) -> ω[B]`, applied literally to the regressed target (or stated for
    `native`).

    Args:
        fn: static function of the times `t[B]` returning `[B]`.
        native: target the weight is stated for (default None: whichever is regressed).
    """

    native: str | None = eqx.field(static=True)
    fn: Callable = eqx.field(static=True)

    def __init__(self, fn: Callable, native: str | None = None):
        self.fn = fn
        self.native = native

    def __call__(self, process: AbstractProcess, t: ArrayLike) -> Array:
        """`fn(t)` broadcast to the shape of `t`."""
        t = jnp.asarray(t)
        return jnp.broadcast_to(jnp.asarray(self.fn(t), dtype=t.dtype), t.shape)


WEIGHTINGS = ("constant", "snr", "likelihood", "edm")


def get_weighting(
    name: str | AbstractWeighting | Callable, sigma_data: float = 0.5
) -> AbstractWeighting:
    """Build a weighting by name (`WEIGHTINGS`; `"edm"` with `sigma_data`); an
    `AbstractWeighting` passes through and a plain callable `w(t)` becomes `CallableWeighting`.
    Raises `ValueError` naming the choices otherwise."""
    if isinstance(name, AbstractWeighting):
        return name
    if isinstance(name, str):
        if name == "constant":
            return ConstantWeighting()
        if name == "snr":
            return SNRWeighting()
        if name == "likelihood":
            return LikelihoodWeighting()
        if name == "edm":
            return EDMWeighting(sigma_data)
    elif callable(name):
        return CallableWeighting(name)
    raise ValueError(
        f"unknown weighting {name!r}; valid choices: {list(WEIGHTINGS)}, "
        "an AbstractWeighting or a callable w(t) -> [B]"
    )
