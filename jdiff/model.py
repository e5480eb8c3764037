"""`Model`: a network (or any pure function) plus its process and what it predicts.

A `Model` answers every prediction exactly, whatever it was trained to predict (monograph ch. 6,
"equivalence of parameterizations"). With $x_t = \\alpha x_0 + \\sigma\\varepsilon$:

| kind | meaning | from $(\\hat x_0, \\hat\\varepsilon)$ |
|---|---|---|
| `"eps"` | $\\mathbb E[\\varepsilon \\mid x_t]$ | $\\hat\\varepsilon$ |
| `"x0"` | $\\mathbb E[x_0 \\mid x_t]$ (the denoiser) | $\\hat x_0$ |
| `"score"` | $\\nabla\\log p_t(x_t)$ | $-\\hat\\varepsilon/\\sigma$ |
| `"velocity"` | $dx_t/dt$ (flow-matching target) | $\\alpha'\\hat x_0 + \\sigma'\\hat\\varepsilon$ |
| `"v"` | Salimans & Ho's $v = \\alpha\\varepsilon - \\sigma x_0$ | $\\alpha\\hat\\varepsilon - \\sigma\\hat x_0$ |

and back: from a velocity $u$, $\\hat x_0 = (\\sigma' x - \\sigma u)/(\\alpha\\sigma' - \\sigma\\alpha')$,
$\\hat\\varepsilon = (\\alpha u - \\alpha' x)/(\\alpha\\sigma' - \\sigma\\alpha')$; from $v$,
$\\hat x_0 = (\\alpha x - \\sigma v)/(\\alpha^2+\\sigma^2)$, $\\hat\\varepsilon = (\\sigma x + \\alpha v)/(\\alpha^2+\\sigma^2)$.

Optional preconditioning (Karras et al. 2022, in the monograph's general form, App. D.6): with
$R = \\alpha^2\\sigma_d^2 + \\sigma^2$ the network F sees $c_{in} x$ and $c_{noise}(t)$ and the model's
denoiser is $D = c_{skip} x + c_{out} F$ with $c_{in} = R^{-1/2}$, $c_{skip} = \\alpha\\sigma_d^2/R$,
$c_{out} = \\sigma\\sigma_d R^{-1/2}$, $c_{noise} = -\\lambda/4$ (= ¼ ln σ for EDM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from jdiff.process.base import AbstractProcess, broadcast_to_batch

__all__ = ["Model", "EDMPrecond", "PREDICTIONS"]

PREDICTIONS = ("eps", "x0", "score", "velocity", "v")


def _check_kind(kind: str) -> None:
    if kind not in PREDICTIONS:
        raise ValueError(f"unknown prediction kind {kind!r}; valid choices: {list(PREDICTIONS)}")


class EDMPrecond(eqx.Module):
    """EDM preconditioning (Karras et al. 2022) for any process.

    Args:
        sigma_data: the data standard deviation σ_d (0.5 in EDM for images in [−1, 1]).
    """

    sigma_data: float = 0.5

    def coefficients(self, process: AbstractProcess, t: ArrayLike):
        """`(c_skip, c_out, c_in, c_noise)` at times `t` (each shaped like `t`)."""
        a = process.alpha(t)
        s = process.sigma(t)
        sd = self.sigma_data
        r = a**2 * sd**2 + s**2
        c_in = 1.0 / jnp.sqrt(r)
        c_skip = a * sd**2 / r
        c_out = s * sd / jnp.sqrt(r)
        c_noise = -0.25 * process.lam(t)
        return c_skip, c_out, c_in, c_noise


class Model(eqx.Module):
    """A network's apply function with its params, process and prediction kind.

    Args:
        apply_fn: static pure function `apply_fn(params, x[B, ...], t[B], cond) -> [B, ...]`. Any
            pure JAX function works (a Flax NNX network enters through `nnx.split`, see
            `jdiff.nn.split_apply`).
        params: its parameters (any pytree; traced through `jit`).
        process: the forward process the model was trained on.
        prediction: what `apply_fn` predicts: one of `"eps"`, `"x0"`, `"score"`, `"velocity"`, `"v"`.
        precond: optional `EDMPrecond`; then `apply_fn` is the raw network F and the model's
            `prediction` must be `"x0"` (the preconditioned denoiser D).

    All prediction methods take `x[B, ...]`, `t` scalar or `[B]`, optional `cond`, and return an
    array shaped like `x`. Times are broadcast to `[B]` before `apply_fn` is called.
    """

    apply_fn: Callable = eqx.field(static=True)
    params: PyTree
    process: AbstractProcess
    prediction: str = eqx.field(static=True)
    precond: EDMPrecond | None = None

    def __check_init__(self):
        _check_kind(self.prediction)
        if not isinstance(self.process, AbstractProcess):
            raise ValueError(
                f"process must be a jdiff.process.AbstractProcess; got {type(self.process)}"
            )
        if self.precond is not None and self.prediction != "x0":
            raise ValueError("EDM preconditioning produces a denoiser: use prediction='x0'")

    @property
    def nfe_per_call(self) -> int:
        """Network evaluations one call of this model costs (static int, default 1).

        Read from `apply_fn.nfe_per_call` when the apply function declares it: guided models
        (e.g. `jdiff.guidance.classifier_free`, which evaluates the conditional and the
        unconditional prediction) declare 2. Solvers multiply their per-step NFE by it.
        """
        return int(getattr(self.apply_fn, "nfe_per_call", 1))

    def with_params(self, params: PyTree) -> Model:
        """This model with other params (e.g. the EMA params)."""
        return eqx.tree_at(lambda m: m.params, self, params, is_leaf=lambda x: x is None)

    def raw(self, x: Array, t: ArrayLike, cond: Any = None) -> Array:
        """The model's own prediction (kind `self.prediction`), shaped like `x`."""
        t = jnp.broadcast_to(jnp.asarray(t, dtype=x.dtype), x.shape[:1])
        if self.precond is not None:
            c_skip, c_out, c_in, c_noise = self.precond.coefficients(self.process, t)
            out = self.apply_fn(self.params, broadcast_to_batch(c_in, x) * x, c_noise, cond)
            self._check_shape(out, x)
            return broadcast_to_batch(c_skip, x) * x + broadcast_to_batch(c_out, x) * out
        out = self.apply_fn(self.params, x, t, cond)
        self._check_shape(out, x)
        return out

    @staticmethod
    def _check_shape(out, x):
        if not hasattr(out, "shape") or out.shape != x.shape:
            raise ValueError(
                f"apply_fn must return an array shaped like x {tuple(x.shape)}; "
                f"got {getattr(out, 'shape', type(out))}"
            )

    # --- conversions --------------------------------------------------------------------------
    def x0_eps(self, x: Array, t: ArrayLike, cond: Any = None) -> tuple[Array, Array]:
        """Both $(\\hat x_0, \\hat\\varepsilon)$, each shaped like `x`, from one network call."""
        out = self.raw(x, t, cond)
        return to_x0_eps(self.process, self.prediction, out, x, t)

    def predict(self, kind: str, x: Array, t: ArrayLike, cond: Any = None) -> Array:
        """Prediction of kind `kind` (see the module table), shaped like `x`."""
        _check_kind(kind)
        out = self.raw(x, t, cond)
        if kind == self.prediction:
            return out
        x0, eps = to_x0_eps(self.process, self.prediction, out, x, t)
        return from_x0_eps(self.process, kind, x0, eps, x, t)

    def eps(self, x: Array, t: ArrayLike, cond: Any = None) -> Array:
        """Noise prediction $\\hat\\varepsilon$."""
        return self.predict("eps", x, t, cond)

    def x0(self, x: Array, t: ArrayLike, cond: Any = None) -> Array:
        """Data prediction (denoiser) $\\hat x_0$."""
        return self.predict("x0", x, t, cond)

    def score(self, x: Array, t: ArrayLike, cond: Any = None) -> Array:
        """Score $\\nabla_x \\log p_t(x) = -\\hat\\varepsilon/\\sigma$."""
        return self.predict("score", x, t, cond)

    def velocity(self, x: Array, t: ArrayLike, cond: Any = None) -> Array:
        """Probability-flow velocity $dx/dt = \\alpha'\\hat x_0 + \\sigma'\\hat\\varepsilon$."""
        return self.predict("velocity", x, t, cond)

    def v(self, x: Array, t: ArrayLike, cond: Any = None) -> Array:
        """Salimans–Ho $v = \\alpha\\hat\\varepsilon - \\sigma\\hat x_0$."""
        return self.predict("v", x, t, cond)


def to_x0_eps(process: AbstractProcess, kind: str, out: Array, x: Array, t: ArrayLike):
    """Convert a prediction `out` of kind `kind` at `(x, t)` to $(\\hat x_0, \\hat\\varepsilon)$."""
    _check_kind(kind)
    a = broadcast_to_batch(process.alpha(t), x)
    s = broadcast_to_batch(process.sigma(t), x)
    if kind == "eps":
        return (x - s * out) / a, out
    if kind == "x0":
        return out, (x - a * out) / s
    if kind == "score":
        eps = -s * out
        return (x - s * eps) / a, eps
    if kind == "velocity":
        da = broadcast_to_batch(process.dalpha(t), x)
        ds = broadcast_to_batch(process.dsigma(t), x)
        det = a * ds - s * da
        return (ds * x - s * out) / det, (a * out - da * x) / det
    # "v"
    n = a**2 + s**2
    return (a * x - s * out) / n, (s * x + a * out) / n


def from_x0_eps(process: AbstractProcess, kind: str, x0: Array, eps: Array, x: Array, t: ArrayLike):
    """Express $(\\hat x_0, \\hat\\varepsilon)$ at `(x, t)` as a prediction of kind `kind`."""
    _check_kind(kind)
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    s = broadcast_to_batch(process.sigma(t), x)
    if kind == "score":
        return -eps / s
    a = broadcast_to_batch(process.alpha(t), x)
    if kind == "velocity":
        da = broadcast_to_batch(process.dalpha(t), x)
        ds = broadcast_to_batch(process.dsigma(t), x)
        return da * x0 + ds * eps
    return a * eps - s * x0
