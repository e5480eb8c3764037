"""Shared machinery of the analytic oracles: the oracle contract and its exact `Model`.

An oracle is a data distribution $p_0$ whose diffused marginals
$p_t(x) = \\int \\mathcal N(x; \\alpha_t x_0, \\sigma_t^2 I)\\,p_0(x_0)\\,dx_0$ are known in closed form
for every process (monograph §3.0, "analytic oracles"). Each oracle computes, at $(x_t, t)$,

* the denoiser $\\hat x_0 = \\mathbb E[x_0 \\mid x_t]$,
* the noise prediction $\\hat\\varepsilon = \\mathbb E[\\varepsilon \\mid x_t] = -\\sigma_t\\nabla\\log p_t$,
* the score $\\nabla\\log p_t(x_t)$,

each directly from its own closed form (never by dividing by α or σ), so all three stay finite on
the whole time domain, including α → 0 (Linear/Trig at t = 1) and σ → 0 where the data density is
smooth. Every other prediction follows from `jdiff.model.from_x0_eps`.

`AbstractOracle.model(process, prediction)` wraps the oracle as a `jdiff.model.Model` whose
`params` are `(oracle, process)` (a pytree of arrays, traced by `jit`, so new values never
recompile) and whose `apply_fn` is a hashable frozen dataclass compared by value.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from jdiff.model import PREDICTIONS, Model, from_x0_eps
from jdiff.process.base import AbstractProcess

__all__ = ["AbstractOracle"]


def _is_concrete(*arrays) -> bool:
    """True when no argument is a tracer (so values can be validated on the host)."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def _as_float_array(a: ArrayLike, name: str) -> Array:
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.floating):
        a = a.astype(jnp.result_type(float))
    return a


def _check_kind(kind: str) -> None:
    if kind not in PREDICTIONS:
        raise ValueError(f"unknown prediction kind {kind!r}; valid choices: {list(PREDICTIONS)}")


def _normalise_weights(weights: ArrayLike | None, n: int, what: str, tol: float = 1e-4) -> Array:
    """Validate mixture weights `[n]` (positive, summing to 1 within `tol`) and normalise them."""
    if weights is None:
        return jnp.full((n,), 1.0 / n, dtype=jnp.result_type(float))
    w = _as_float_array(weights, "weights")
    if w.shape != (n,):
        raise ValueError(f"weights must have shape [{n}] (one per {what}); got {w.shape}")
    if _is_concrete(w):
        wn = np.asarray(w, dtype=np.float64)
        if not np.all(np.isfinite(wn)) or not np.all(wn > 0):
            raise ValueError(f"weights must be finite and strictly positive; got {wn}")
        if abs(wn.sum() - 1.0) > tol:
            raise ValueError(
                f"weights must sum to 1 (within {tol}); got sum {wn.sum():.6g}. "
                "Pass weights / weights.sum() to normalise explicitly."
            )
    return w / jnp.sum(w)


def _flatten(x: Array, dim: int) -> Array:
    """`x[B, ...]` → `[B, D]`, checking that the non-batch axes hold `dim` numbers."""
    x = jnp.asarray(x)
    if x.ndim < 2 or math.prod(x.shape[1:]) != dim:
        raise ValueError(
            f"x must have shape [B, ...] with {dim} numbers per example (the data dimension); "
            f"got {x.shape}"
        )
    return x.reshape(x.shape[0], dim)


def _batch_times(t: ArrayLike, batch: int, name: str = "t") -> Array:
    """Check that `t` is a scalar or `[B]` and return it (unchanged)."""
    t = jnp.asarray(t)
    if not (t.ndim == 0 or t.shape == (batch,)):
        raise ValueError(f"{name} must be a scalar or have shape [B] = [{batch}]; got {t.shape}")
    return t


def _check_process(process: AbstractProcess) -> None:
    if not isinstance(process, AbstractProcess):
        raise ValueError(f"process must be a jdiff.process.AbstractProcess; got {type(process)}")


def _coeffs(process: AbstractProcess, t: Array, batch: int) -> tuple[Array, Array]:
    """`(alpha[B], sigma[B])` at times `t` (scalar or `[B]`, already checked)."""
    a = jnp.broadcast_to(process.alpha(t), (batch,))
    s = jnp.broadcast_to(process.sigma(t), (batch,))
    return a, s


def _sigma_dsigma(process: AbstractProcess, t: ArrayLike, shape: tuple[int, ...]) -> Array:
    """$\\sigma\\sigma' = \\tfrac12(\\sigma^2)'$, using $\\tfrac12 g^2$ where $\\sigma\\sigma'$ is
    $0\\cdot\\infty$ (σ = 0 on VP-type paths; there $g^2 = (\\sigma^2)'$)."""
    ss = jnp.broadcast_to(process.sigma(t) * process.dsigma(t), shape)
    return jnp.where(jnp.isfinite(ss), ss, 0.5 * jnp.broadcast_to(process.g2(t), shape))


class AbstractOracle(eqx.Module):
    """A data distribution with closed-form diffused marginals, denoiser and score.

    Subclasses implement `_x0_eps_score` and `marginal_log_prob`. All public methods take
    `x[B, ...]` (with `D` numbers per example), `t` scalar or `[B]`, and a `process`, and return
    arrays shaped like `x` (predictions) or `[B]` (log-densities).
    """

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """The data dimension D."""

    @abc.abstractmethod
    def _x0_eps_score(
        self, x: Array, a: Array, s: Array, labels: Array | None
    ) -> tuple[Array, Array, Array]:
        """`(x0, eps, score)`, each `[B, D]`, at flat `x[B, D]` with `alpha[B]`, `sigma[B]`."""

    @abc.abstractmethod
    def marginal_log_prob(self, x: Array, t: ArrayLike, process: AbstractProcess) -> Array:
        """$\\log p_t(x)$, `[B]`."""

    def _prepare(
        self, x: ArrayLike, t: ArrayLike, process: AbstractProcess
    ) -> tuple[Array, Array, Array]:
        """Check inputs; return `(x, x_flat[B, D], t)` with `t` an array (scalar or `[B]`)."""
        _check_process(process)
        x = jnp.asarray(x)
        xf = _flatten(x, self.dim)
        t = _batch_times(t, x.shape[0])
        if not jnp.issubdtype(t.dtype, jnp.floating):
            t = t.astype(jnp.result_type(float))
        return x, xf, t

    def _prepare_labels(self, labels: ArrayLike | None, batch: int) -> Array | None:
        """Check class labels; oracles without classes accept only `None`."""
        if labels is not None:
            raise ValueError(f"{type(self).__name__} has no classes; pass labels=None")
        return None

    # --- predictions --------------------------------------------------------------------------
    def predict(
        self,
        kind: str,
        x: Array,
        t: ArrayLike,
        process: AbstractProcess,
        labels: ArrayLike | None = None,
    ) -> Array:
        """Exact prediction of kind `kind` (`"eps"`, `"x0"`, `"score"`, `"velocity"`, `"v"`).

        Args:
            kind: the prediction kind (see `jdiff.model`).
            x: `[B, ...]` noisy samples $x_t$.
            t: times, scalar or `[B]`.
            process: the forward process.
            labels: optional class labels (only for oracles with classes; see
                `GaussianMixture`).

        Returns:
            An array shaped like `x`. `"x0"`, `"eps"` and `"score"` come from their own closed
            forms; `"v"` is $\\alpha\\hat\\varepsilon - \\sigma\\hat x_0$ and `"velocity"` is
            $\\alpha'\\hat x_0 + \\sigma'\\hat\\varepsilon$, computed as
            $\\alpha'\\hat x_0 - \\sigma\\sigma'\\nabla\\log p_t$ (finite at σ = 0 for smooth data).
        """
        _check_kind(kind)
        x, xf, t = self._prepare(x, t, process)
        labels = self._prepare_labels(labels, x.shape[0])
        return self._predict(kind, xf, t, process, labels).reshape(x.shape)

    def _predict(self, kind, xf, t, process, labels):
        a, s = _coeffs(process, t, xf.shape[0])
        x0, eps, score = self._x0_eps_score(xf, a, s, labels)
        if kind == "x0":
            return x0
        if kind == "eps":
            return eps
        if kind == "score":
            return score
        if kind == "velocity":
            # σ' ε̂ = −σσ' ∇log p_t: finite wherever the score is, including σ = 0 on VP-type
            # paths where σ' = ∞ (there σσ' = ½(σ²)' = ½ g²).
            da = jnp.broadcast_to(process.dalpha(t), a.shape)[:, None]
            return da * x0 - _sigma_dsigma(process, t, a.shape)[:, None] * score
        return from_x0_eps(process, kind, x0, eps, xf, t)

    def x0(self, x: Array, t: ArrayLike, process: AbstractProcess, labels=None) -> Array:
        """Exact denoiser $\\hat x_0(x, t) = \\mathbb E[x_0 \\mid x_t = x]$, shaped like `x`."""
        return self.predict("x0", x, t, process, labels)

    def eps(self, x: Array, t: ArrayLike, process: AbstractProcess, labels=None) -> Array:
        """Exact noise prediction $\\hat\\varepsilon = -\\sigma_t\\nabla\\log p_t(x)$, like `x`."""
        return self.predict("eps", x, t, process, labels)

    def score(self, x: Array, t: ArrayLike, process: AbstractProcess, labels=None) -> Array:
        """Exact score $\\nabla_x\\log p_t(x)$, shaped like `x`."""
        return self.predict("score", x, t, process, labels)

    def velocity(self, x: Array, t: ArrayLike, process: AbstractProcess, labels=None) -> Array:
        """Exact PF-ODE velocity $\\alpha'\\hat x_0 + \\sigma'\\hat\\varepsilon$, like `x`."""
        return self.predict("velocity", x, t, process, labels)

    # --- as a Model ---------------------------------------------------------------------------
    def model(self, process: AbstractProcess, prediction: str = "eps") -> Model:
        """This oracle as a `jdiff.model.Model` predicting `prediction` exactly.

        `params` is `(self, process)`; `apply_fn(params, x[B, ...], t[B], cond)` ignores `cond`.
        The apply function compares by value, so rebuilding the model with new oracle values
        (same shapes) does not recompile a jitted function that takes the model as an argument.
        """
        _check_kind(prediction)
        return Model(_ExactApply(prediction, False), (self, process), process, prediction)


@dataclasses.dataclass(frozen=True)
class _ExactApply:
    """Hashable apply function of an oracle's exact `Model`: `params = (oracle, process)`."""

    kind: str
    conditional: bool

    def __call__(self, params: tuple[AbstractOracle, AbstractProcess], x, t, cond: Any = None):
        oracle, process = params
        labels = cond if self.conditional else None
        return oracle.predict(self.kind, x, t, process, labels).astype(jnp.asarray(x).dtype)
