"""Regression targets of the denoising loss and the per-sample equivalences between them.

With $x_t = \\alpha x_0 + \\sigma\\varepsilon$, every target is affine in $(x_0, \\varepsilon)$,
$A_t x_0 + B_t\\varepsilon$ (monograph eq. "general-dm-loss", ch. 6):

| target | $(A_t, B_t)$ | value |
|---|---|---|
| `"eps"` | $(0, 1)$ | $\\varepsilon$ |
| `"x0"` | $(1, 0)$ | $x_0$ |
| `"score"` | $(0, -1/\\sigma)$ | $\\nabla\\log p_t(x_t\\mid x_0) = -\\varepsilon/\\sigma$ |
| `"velocity"` | $(\\alpha', \\sigma')$ | $\\alpha' x_0 + \\sigma'\\varepsilon$ (flow matching) |
| `"v"` | $(-\\sigma, \\alpha)$ | $\\alpha\\varepsilon - \\sigma x_0$ (Salimans & Ho 2022) |

At a fixed $x_t$ both the truth and any model obey $\\alpha x_0 + \\sigma\\varepsilon = x_t$, so the error
in every target is a scalar multiple of the noise error, $e_K = c_K(t)\\,(\\hat\\varepsilon - \\varepsilon)$, with
$c_{eps} = 1$, $c_{x0} = -\\sigma/\\alpha$, $c_{score} = -1/\\sigma$,
$c_{velocity} = (\\alpha\\sigma' - \\sigma\\alpha')/\\alpha$, $c_v = (\\alpha^2 + \\sigma^2)/\\alpha$. This gives the
monograph's per-sample equivalences
$\\|\\hat s - s\\|^2 = \\sigma^{-2}\\|\\hat\\varepsilon - \\varepsilon\\|^2 = \\alpha^2\\sigma^{-4}\\|\\hat x_0 - x_0\\|^2
= \\big(\\alpha / (\\sigma(\\alpha'\\sigma - \\alpha\\sigma'))\\big)^2\\|\\hat u - u\\|^2$.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from jdiff.model import PREDICTIONS, from_x0_eps
from jdiff.process.base import AbstractProcess

__all__ = ["TARGETS", "check_target", "target_value", "error_scale", "equivalence_factor"]

TARGETS = PREDICTIONS


def check_target(kind: str) -> None:
    """Raise `ValueError` naming the valid choices if `kind` is not a known target."""
    if kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r}; valid choices: {list(TARGETS)}")


def target_value(process: AbstractProcess, kind: str, x0: Array, eps: Array, t: ArrayLike) -> Array:
    """The closed-form regression target $A_t x_0 + B_t\\varepsilon$ of kind `kind`.

    Args:
        process: the forward process.
        kind: one of `TARGETS` (see the module table).
        x0: clean data `[B, ...]`.
        eps: the noise `[B, ...]` with $x_t = \\alpha x_0 + \\sigma\\varepsilon$.
        t: times, scalar or `[B]`.

    Returns:
        The target, shaped like `x0`.
    """
    check_target(kind)
    # the target is the prediction the exact posterior mean would give, evaluated at the true
    # (x0, ε): the Model's own conversion (x only sets the broadcasting shape)
    return from_x0_eps(process, kind, x0, eps, x0, t)


def _scaled_error_scale(process: AbstractProcess, kind: str, t: ArrayLike) -> Array:
    # α · c_K: finite wherever σ > 0, also at α = 0.
    a = process.alpha(t)
    s = process.sigma(t)
    if kind == "eps":
        return a
    if kind == "x0":
        return -s
    if kind == "score":
        return -a / s
    if kind == "velocity":
        return a * process.dsigma(t) - s * process.dalpha(t)
    return a**2 + s**2


def error_scale(process: AbstractProcess, kind: str, t: ArrayLike) -> Array:
    """$c_K(t)$ with $e_K = c_K(\\hat\\varepsilon - \\varepsilon)$ at fixed $x_t$ (module docstring).

    Args:
        process: the forward process.
        kind: one of `TARGETS`.
        t: times, any shape.

    Returns:
        $c_K(t)$ shaped like `t` (infinite for `"x0"`, `"velocity"`, `"v"` where α = 0).
    """
    check_target(kind)
    if kind == "eps":
        return jnp.ones_like(process.sigma(t))
    if kind == "score":
        return -1.0 / process.sigma(t)
    return _scaled_error_scale(process, kind, t) / process.alpha(t)


def equivalence_factor(
    process: AbstractProcess, t: ArrayLike, from_kind: str, to_kind: str
) -> Array:
    """$(c_{to}/c_{from})^2$: the factor with $\\|e_{to}\\|^2 = \\text{factor}\\cdot\\|e_{from}\\|^2$.

    A weighting $\\omega_N$ stated for target N becomes $\\omega_K = \\omega_N \\cdot$
    `equivalence_factor(process, t, K, N)` for target K, which leaves the loss value unchanged.
    Computed as a ratio of $\\alpha c_K$ (finite at α = 0) except between `"eps"` and `"score"`,
    where it is $\\sigma^{\\mp 2}$ exactly.

    Args:
        process: the forward process.
        t: times, any shape.
        from_kind, to_kind: targets (`TARGETS`).

    Returns:
        The factor, shaped like `t`.
    """
    check_target(from_kind)
    check_target(to_kind)
    if from_kind == to_kind:
        return jnp.ones_like(process.sigma(t))
    if {from_kind, to_kind} <= {"eps", "score"}:
        return error_scale(process, to_kind, t) ** 2 / error_scale(process, from_kind, t) ** 2
    num = _scaled_error_scale(process, to_kind, t)
    den = _scaled_error_scale(process, from_kind, t)
    return (num / den) ** 2
