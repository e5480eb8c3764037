"""The shared machinery of jdiff's samplers: the probability-flow term and the solver base class.

Sampling is `diffrax.diffeqsolve` over a fixed grid (`diffrax.StepTo`) or with an adaptive
controller. diffrax hands a solver negated times when t0 > t1 (DESIGN §3), so jdiff integrates in
the increasing variable $u = -t$: a grid `ts` (decreasing in t) becomes `-ts`, and the term's
vector field is $dx/du = -v(x, -u)$. Every jdiff solver undoes the sign (`s = -u0`, `t = -u1`) and
works with real diffusion times, where it can evaluate σ and λ.

A jdiff solver subclasses `AbstractDiffusionSolver` and implements

    update(ctx, s, t, x, history) -> (x_t, history, nfe)

for one step from time `s` (noisier) to time `t` (cleaner). `ctx` (a `StepContext`) gives the
model, the conditioning, per-step Gaussian noise, and whether σ(t) = 0. The base class keeps the
step counter, the number of network evaluations (NFE) and the solver's history in `solver_state`;
the `nfe` a solver returns counts model calls and is multiplied by `model.nfe_per_call` (2 for a
classifier-free-guided model, which evaluates the network twice per call).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from jdiff.model import Model

__all__ = [
    "ProbabilityFlowTerm",
    "AbstractDiffusionSolver",
    "StepContext",
    "SolverState",
    "unwrap_term",
]


class ProbabilityFlowTerm(diffrax.AbstractTerm):
    """The probability-flow ODE of a `Model` in the variable $u = -t$: $dx/du = -v(x, -u)$.

    Args:
        model: the `jdiff.Model` being sampled.
        cond: conditioning passed to the model (or None).
        key: PRNG key for stochastic solvers (None for deterministic ones).
        ts: the `[N+1]` time grid of a fixed-grid solve (None for adaptive solves); solvers
            that need the step count or neighbouring times (`lower_order_final`) read it here.
        brownian: an optional shared Brownian path in u = −t (`diffrax.AbstractBrownianPath`
            shaped like the state); None means per-step `fold_in` noise (see
            `StepContext.brownian_increment`).
    """

    model: Model
    cond: Any = None
    key: PRNGKeyArray | None = None
    ts: Array | None = None
    brownian: diffrax.AbstractBrownianPath | None = None

    def vf(self, t, y, args):
        return -self.model.velocity(y, -t, self.cond)

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return jax.tree.map(lambda v: v * control, vf)


def unwrap_term(terms) -> ProbabilityFlowTerm:
    """The `ProbabilityFlowTerm` inside diffrax's wrappers (diffrax wraps terms for direction)."""
    while not isinstance(terms, ProbabilityFlowTerm):
        inner = getattr(terms, "term", None)
        if inner is None:
            raise ValueError(
                f"jdiff solvers integrate a ProbabilityFlowTerm; got {type(terms).__name__}"
            )
        terms = inner
    return terms


class SolverState(NamedTuple):
    """Solver state carried between steps: step index, NFE so far, solver-specific history."""

    step: Array
    nfe: Array
    history: PyTree


class StepContext(eqx.Module):
    """What a solver's `update` may use.

    Attributes:
        model, cond: the model and its conditioning.
        key: PRNG key of the solve (None if deterministic).
        step: int32 index of the current step (0 for the first step from `ts[0]`).
        ts: the `[N+1]` grid (None for adaptive solves).
        solver_name: for error messages.
        brownian: the solve's shared Brownian path in u = −t, or None for per-step `fold_in`
            noise (`jdiff.solve(..., brownian=...)`).
    """

    model: Model
    cond: Any
    key: PRNGKeyArray | None
    step: Array
    ts: Array | None
    solver_name: str = eqx.field(static=True)
    brownian: diffrax.AbstractBrownianPath | None = None

    @property
    def num_steps(self) -> int:
        """Total number of steps N of the grid (static)."""
        if self.ts is None:
            raise ValueError(f"{self.solver_name} needs a fixed time grid")
        return self.ts.shape[0] - 1

    @property
    def steps_left(self) -> Array:
        """Steps remaining including the current one (N − step)."""
        return self.num_steps - self.step

    @property
    def process(self):
        """The model's forward process."""
        return self.model.process

    def x0_eps(self, x: Array, t) -> tuple[Array, Array]:
        """$(\\hat x_0, \\hat\\varepsilon)$ at `(x, t)` (one network evaluation)."""
        return self.model.x0_eps(x, t, self.cond)

    def predict(self, kind: str, x: Array, t) -> Array:
        """The model's prediction of `kind` at `(x, t)` (one network evaluation)."""
        return self.model.predict(kind, x, t, self.cond)

    def normal(self, like: Array, index: int = 0) -> Array:
        """Standard normal noise shaped like `like`, a pure function of (key, step, index)."""
        if self.key is None:
            raise ValueError(f"{self.solver_name} is stochastic: pass key=... to sample/solve")
        k = jax.random.fold_in(jax.random.fold_in(self.key, self.step), index)
        return jax.random.normal(k, like.shape, like.dtype)

    def brownian_increment(self, s, t, like: Array, index: int = 0) -> Array:
        """The Brownian increment over a step from time `s` down to `t < s`, shaped like `like`.

        Reverse-time SDEs are driven by a Brownian motion W in the increasing variable u = −t,
        so the increment is $W(-t) - W(-s) \\sim \\mathcal N(0, (s - t) I)$. Without a shared
        path (the default, `brownian="fold_in"`) it is $\\sqrt{s - t}$ times `normal(like,
        index)`: cheap, independent across steps, but a different path for every grid. With a
        shared path (`brownian="tree"` or a user `diffrax.AbstractBrownianPath`) it is read
        from that one path, so grids over the same interval see the same Brownian motion (what
        strong-convergence tests need); `index` must then be 0 (one path, one increment).
        """
        if self.brownian is None:
            return jnp.sqrt(jnp.asarray(s - t, like.dtype)) * self.normal(like, index)
        if not isinstance(index, int) or index != 0:
            raise ValueError(
                f"{self.solver_name}: a shared Brownian path gives one increment per step; "
                f"index must be 0, got {index!r}"
            )
        dw = self.brownian.evaluate(-s, -t)
        if dw.shape != like.shape:
            raise ValueError(
                f"the Brownian path has shape {dw.shape}; the state has shape {like.shape}"
            )
        return dw.astype(like.dtype)

    def brownian_normal(self, s, t, like: Array, index: int = 0) -> Array:
        """`brownian_increment(s, t, like, index) / sqrt(s − t)`: a standard normal, shaped like
        `like`, that is a function of the shared Brownian path when there is one (and exactly
        `normal(like, index)` when there is not)."""
        if self.brownian is None:
            return self.normal(like, index)
        dt = jnp.asarray(s - t, like.dtype)
        return self.brownian_increment(s, t, like, index) / jnp.sqrt(dt)

    def sigma_is_zero(self, t) -> Array:
        """True where σ(t) = 0 (the final step of a grid that ends at `process.t_zero`)."""
        return self.process.sigma(t) == 0


class AbstractDiffusionSolver(diffrax.AbstractSolver):
    """Base class of jdiff's fixed-grid samplers (a `diffrax.AbstractSolver`).

    Subclasses implement `update` and `order` (and `strong_order` if stochastic), and may
    override `init_history` for multistep methods and `stochastic` for samplers that draw noise.
    """

    term_structure: ClassVar = ProbabilityFlowTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation
    stochastic: ClassVar[bool] = False

    def init_history(self, model: Model, x: Array) -> PyTree:
        """Initial multistep history (None for one-step methods)."""
        return None

    @abc.abstractmethod
    def update(self, ctx: StepContext, s: Array, t: Array, x: Array, history: PyTree):
        """One step from time `s` to time `t < s`; returns `(x_t, history, nfe)`."""

    def init(self, terms, t0, t1, y0, args):
        return SolverState(
            step=jnp.zeros((), jnp.int32),
            nfe=jnp.zeros((), jnp.int32),
            history=self.init_history(unwrap_term(terms).model, y0),
        )

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del args, made_jump
        term = unwrap_term(terms)
        ctx = StepContext(
            term.model,
            term.cond,
            term.key,
            solver_state.step,
            term.ts,
            type(self).__name__,
            term.brownian,
        )
        y1, history, nfe = self.update(ctx, -t0, -t1, y0, solver_state.history)
        state = SolverState(
            step=solver_state.step + 1,
            nfe=solver_state.nfe + jnp.asarray(nfe, jnp.int32) * ctx.model.nfe_per_call,
            history=history,
        )
        return y1, None, dict(y0=y0, y1=y1), state, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
