"""Exact log-likelihood through the augmented probability-flow ODE (instantaneous change of variables).

The probability-flow ODE $dx/dt = v(x, t)$ (the model's `velocity`, $v = \\alpha'\\hat x_0 +
\\sigma'\\hat\\varepsilon = f x - \\tfrac12 g^2\\nabla\\log p_t$) transports $p_{t_0}$ to $p_{t_1}$, and along
a trajectory (Chen et al. 2018; Song et al. 2021, eq. 40; monograph §4.2, §5.1)

$$\\frac{d}{dt}\\log p_t(x(t)) = -\\nabla\\cdot v(x(t), t)
\\quad\\Longrightarrow\\quad
\\log p_{t_0}(x) = \\log p_{t_1}(x(t_1)) + \\int_{t_0}^{t_1}\\nabla\\cdot v(x(t), t)\\,dt .$$

jdiff integrates the augmented state $(x, \\ell)$ with $d\\ell/dt = +\\nabla\\cdot v$ forward in time
from $t_0$ = `t_start` (default `process.t_min`) to $t_1$ = `t_end` (default `process.t_max`) and
returns $\\log p(x) = \\log\\pi(x(t_1)) + \\ell(t_1)$, the sign convention of score_sde's
`likelihood.py` (the monograph's translated text has the opposite sign on δ; see the inventory
§2 item 7).

**What the number is.** With a prior $\\pi$ in place of $p_{t_1}$ the result is the exact
log-density, at $t_0$, of the model defined by pushing $\\pi$ backwards through the PF-ODE. For an
exact model (`jdiff.analytic`) it equals

$$\\log p_{t_0}(x) + [\\log\\pi(x_{t_1}) - \\log p_{t_1}(x_{t_1})],$$

and differs from the data log-density $\\log p_0(x)$ by two gaps:

* **truncation at t_min**: $\\log p_{t_0}(x) - \\log p_0(x)$, since $p_{t_0}$ is the data blurred
  by $\\mathcal N(0, \\sigma_{t_0}^2)$ (and scaled by $\\alpha_{t_0}$). The ODE cannot start at σ = 0
  (the velocity $(\\alpha' x_0 + \\sigma'\\varepsilon)$ is singular there), so this gap is inherent;
  it is O(D σ²_{t_0}/s²) for data with scale s;
* **prior mismatch at t_max**: $\\log\\pi(x_{t_1}) - \\log p_{t_1}(x_{t_1})$, since the prior
  $\\mathcal N(0, \\sigma_{t_1}^2 I)$ ignores the residual signal $\\alpha_{t_1}x_0$ (VP: α(1) ≈ 6.6e-3;
  EDM: the data variance next to σ_max² = 6400; zero for Linear/Trig at t = 1 where α = 0).

Both can reach 1e-2 nats on toy data; `benchmarks/likelihood.py` reports them. Pass
`prior_logp=lambda z: oracle.marginal_log_prob(z, t_end, process)` to remove the second gap.

**Divergence.** `"exact"`: the Jacobian trace from D JVPs per example (`jax.linearize` and a vmap
over the basis), cost ~D network evaluations; for small D. `"hutchinson"`: the
Hutchinson–Skilling estimate $\\nabla\\cdot v \\approx \\frac1P\\sum_p \\varepsilon_p^\\top
(\\partial v/\\partial x)\\varepsilon_p$ with probes drawn once per solve from `key` (Rademacher or
Gaussian; Grathwohl et al. 2019). Because the x-trajectory does not depend on the probes and
the estimate is linear in the integrand, the returned log-density is unbiased.

**Per-example divergence.** The network is evaluated per example (a `vmap` over the batch with the
model called on a batch of 1) so the divergence is the trace of each example's own Jacobian. This
assumes the network treats examples independently (no batch norm in training mode), as every
jdiff network does; under `vmap` XLA still evaluates the whole batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from jdiff.model import Model
from jdiff.solvers.adaptive import Diffrax

__all__ = ["LikelihoodResult", "log_likelihood", "DIVERGENCES", "PROBES"]

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


class LikelihoodResult(eqx.Module):
    """Result of `log_likelihood`.

    Attributes:
        log_prob: `[B]` $\\log p_{t_0}(x) = $ `prior_logp + delta_logp` (nats).
        prior_logp: `[B]` $\\log\\pi(z)$, the prior at the latent.
        delta_logp: `[B]` $\\int_{t_0}^{t_1}\\nabla\\cdot v\\,dt$ along the trajectory.
        z: `[B, ...]` the latent $x(t_1)$ at `t_end`.
        nfe: int32 scalar, evaluations of the augmented vector field (each is one network
            evaluation plus its divergence: D extra JVPs for `"exact"`, `n_probes` for
            `"hutchinson"`), counted from the Butcher tableau and the attempted steps
            (`jdiff.solvers.Diffrax.nfe`); tests/test_likelihood.py checks it against the calls
            that actually run.
        stats: diffrax's statistics (`num_steps`, `num_accepted_steps`, `num_rejected_steps`).
        result: diffrax's `RESULTS` code (successful unless `throw=False` hid a failure).
    """

    log_prob: Array
    prior_logp: Array
    delta_logp: Array
    z: Array
    nfe: Array
    stats: dict
    result: Any


def _draw_probes(key, probe, n_probes, x):
    shape = (x.shape[0], n_probes) + x.shape[1:]
    if probe == "rademacher":
        return jax.random.rademacher(key, shape, dtype=x.dtype)
    return jax.random.normal(key, shape, dtype=x.dtype)


def _velocity_and_divergence(model, x, t, cond, probes, exact):
    """`(v[B, ...], div[B])`: the PF-ODE velocity and (an estimate of) its divergence per example."""
    shape = x.shape[1:]
    d = math.prod(shape)

    def one(xi, ci, pi):
        ci = None if ci is None else jax.tree.map(lambda c: c[None], ci)

        def f(y):
            return model.velocity(y[None], t, ci)[0]

        v, f_lin = jax.linearize(f, xi)
        if exact:
            basis = jnp.eye(d, dtype=xi.dtype).reshape((d,) + shape)
            cols = jax.vmap(f_lin)(basis).reshape(d, d)  # cols[j] = J e_j
            div = jnp.trace(cols)
        else:
            jv = jax.vmap(f_lin)(pi)  # [P, ...]
            div = jnp.mean(jnp.sum((jv * pi).reshape(pi.shape[0], -1), axis=-1))
        return v, div

    cond_axes = None if cond is None else 0
    probe_axes = None if probes is None else 0
    return jax.vmap(one, in_axes=(0, cond_axes, probe_axes))(x, cond, probes)


@eqx.filter_jit
def _solve(
    model,
    x,
    key,
    probe,
    n_probes,
    cond,
    t_start,
    t_end,
    prior_logp,
    solver,
    rtol,
    atol,
    dt0,
    max_steps,
    adjoint,
    exact,
    throw,
):
    def vf(t, y, args):
        xs, _ = y
        v, div = _velocity_and_divergence(model, xs, t, cond, probes, exact)
        return v, div

    _check_times(model, t_start, t_end)  # at trace time only: static times cost nothing per call
    probes = None if key is None else _draw_probes(key, probe, n_probes, x)
    t_start = jnp.asarray(t_start, x.dtype)
    t_end = jnp.asarray(t_end, x.dtype)
    t_start = eqx.error_if(t_start, t_start >= t_end, "log_likelihood needs t_start < t_end")
    y0 = (x, jnp.zeros(x.shape[:1], x.dtype))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf),
        solver,
        t_start,
        t_end,
        dt0=dt0,
        y0=y0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(t1=True),
        adjoint=adjoint,
        max_steps=max_steps,
        throw=throw,
    )
    z = sol.ys[0][-1]
    delta = sol.ys[1][-1]
    prior = prior_logp(z) if prior_logp is not None else model.process.prior_logp(z)
    nfe = Diffrax(solver, rtol, atol).nfe(sol.stats["num_steps"])
    return LikelihoodResult(
        log_prob=prior + delta,
        prior_logp=prior,
        delta_logp=delta,
        z=z,
        nfe=nfe,
        stats=sol.stats,
        result=sol.result,
    )


_NOT_CONCRETE = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
    TypeError,
)


def _concrete_float(a):
    try:
        return float(np.asarray(a))
    except _NOT_CONCRETE:
        return None


def _check_times(model, t_start, t_end):
    """Structural checks on concrete times (skipped for values only known under tracing).

    Called while `_solve` traces: Python-float times and process constants are static there, so
    the checks run once per compilation and add nothing to later calls."""
    process = model.process
    ts, te = _concrete_float(t_start), _concrete_float(t_end)
    if ts is None or te is None:
        return
    if not ts < te:
        raise ValueError(
            f"log_likelihood integrates forward in time: need t_start < t_end; got {ts}, {te}"
        )
    with jax.ensure_compile_time_eval():
        try:
            process.check_times(jnp.asarray([ts, te]))
            sigma0 = _concrete_float(process.sigma(jnp.asarray(ts)))
            alpha1 = _concrete_float(process.alpha(jnp.asarray(te)))
        except _NOT_CONCRETE:
            return
    if sigma0 == 0.0:
        raise ValueError(
            f"t_start = {ts} is where σ = 0: the PF-ODE velocity is singular there; start at "
            f"t_start > 0 (e.g. process.t_min = {process.t_min})"
        )
    if alpha1 == 0.0 and model.prediction in ("eps", "score"):
        raise ValueError(
            f"α(t_end) = 0 at t_end = {te}: a model predicting {model.prediction!r} cannot give the "
            "velocity there (x̂₀ = (x − σ ε̂)/α). Use t_end < "
            f"{te} or a model predicting 'velocity', 'x0' or 'v'"
        )


def log_likelihood(
    model: Model,
    x: Array,
    *,
    solver: diffrax.AbstractAdaptiveSolver | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    divergence: str = "exact",
    n_probes: int = 1,
    probe: str = "rademacher",
    key: PRNGKeyArray | None = None,
    cond: Any = None,
    t_start: ArrayLike | None = None,
    t_end: ArrayLike | None = None,
    prior_logp: Callable[[Array], Array] | None = None,
    dt0: float | None = None,
    max_steps: int = 16384,
    adjoint: diffrax.AbstractAdjoint | None = None,
    throw: bool = True,
) -> LikelihoodResult:
    """Log-likelihood of `x` under a model's probability-flow ODE (see the module docstring).

    Integrates $(x, \\ell)$ with $dx/dt = v(x, t)$, $d\\ell/dt = \\nabla\\cdot v(x, t)$ from `t_start`
    to `t_end` in one `diffrax.diffeqsolve` inside one `eqx.filter_jit`, and returns
    $\\log p_{t_{start}}(x) = \\log\\pi(x(t_{end})) + \\ell(t_{end})$ (Song et al. 2021, "Score-Based
    Generative Modeling through SDEs", App. D.2; Grathwohl et al. 2019, FFJORD).

    Args:
        model: a `jdiff.Model` (network or analytic oracle); its `velocity` is the PF-ODE field.
        x: `[B, ...]` data (in the model's data space; float).
        solver: an adaptive diffrax solver (default `diffrax.Tsit5()`; `Dopri5` = scipy's RK45,
            `Dopri8` for tight float64 references).
        rtol, atol: tolerances of the `diffrax.PIDController` (they bound x and ℓ alike).
        divergence: `"exact"` (Jacobian trace, D JVPs per evaluation) or `"hutchinson"`.
        n_probes: Hutchinson probes per example, averaged (fixed for the whole solve).
        probe: `"rademacher"` or `"gaussian"` Hutchinson probes.
        key: PRNG key for the probes (required for `"hutchinson"`).
        cond: conditioning for the model; every leaf must have a leading batch axis `[B, ...]`.
        t_start: start time $t_0$ (default `process.t_min`); σ(t_start) must be > 0.
        t_end: end time $t_1$ (default `process.t_max`); if α(t_end) = 0 (Linear/Trig at t = 1)
            the model must predict `"velocity"`, `"x0"` or `"v"`.
        prior_logp: callable `z[B, ...] -> [B]` (default `model.process.prior_logp`, the
            $\\mathcal N(0, \\sigma_{t_{max}}^2 I)$ prior). Pass the exact $\\log p_{t_1}$ to remove the
            prior gap. A new Python function object recompiles; reuse one.
        dt0: initial step (default None: diffrax picks it, costing 2 evaluations).
        max_steps: step budget of the solve.
        adjoint: a `diffrax.AbstractAdjoint` for gradients (default
            `diffrax.RecursiveCheckpointAdjoint()`, exact reverse-mode through the solver;
            `diffrax.BacksolveAdjoint()` for O(1) memory).
        throw: raise if the solve fails (else see `result.result`).

    Returns:
        A `LikelihoodResult` (`log_prob[B]`, `prior_logp[B]`, `delta_logp[B]`, `z[B, ...]`, `nfe`,
        `stats`, `result`). Differentiable with respect to `model.params` and `x`; `vmap`-able.

    Raises:
        ValueError: unknown `divergence`/`probe` (naming the valid choices), a non-adaptive
            solver, missing `key` for Hutchinson, `n_probes < 1`, `x` without a batch axis,
            `t_start >= t_end`, times outside the process domain, σ(t_start) = 0, or α(t_end) = 0
            with an `"eps"`/`"score"` model.
    """
    if not isinstance(model, Model):
        raise ValueError(f"model must be a jdiff.Model; got {type(model).__name__}")
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; valid choices: {list(DIVERGENCES)}")
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; valid choices: {list(PROBES)}")
    solver = diffrax.Tsit5() if solver is None else solver
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(
            "log_likelihood needs an adaptive diffrax solver (e.g. diffrax.Tsit5(), Dopri5(), "
            f"Dopri8()); got {type(solver).__name__}"
        )
    x = jnp.asarray(x)
    if x.ndim < 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"x must be a float array [B, ...] with a batch axis; got {x.shape} {x.dtype}"
        )
    process = model.process
    t_start = process.t_min if t_start is None else t_start
    t_end = process.t_max if t_end is None else t_end
    ts, te = _concrete_float(t_start), _concrete_float(t_end)
    if ts is not None and te is not None and not ts < te:
        raise ValueError(
            f"log_likelihood integrates forward in time: need t_start < t_end; got {ts}, {te}"
        )
    if divergence == "hutchinson":
        if key is None:
            raise ValueError("divergence='hutchinson' draws random probes: pass key=...")
        if int(n_probes) < 1:
            raise ValueError(f"n_probes must be >= 1; got {n_probes}")
    else:
        key = None
    if adjoint is None:
        adjoint = diffrax.RecursiveCheckpointAdjoint()
    return _solve(
        model,
        x,
        key,
        probe,
        int(n_probes),
        cond,
        t_start,
        t_end,
        prior_logp,
        solver,
        rtol,
        atol,
        dt0,
        max_steps,
        adjoint,
        divergence == "exact",
        throw,
    )
