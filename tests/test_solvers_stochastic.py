"""EDM, ancestral, Langevin/predictor–corrector and SDE-DPM-Solver++ samplers, and shared
Brownian paths (`jdiff.solve(..., brownian="tree")`).

Closed-form truth: the exact Gaussian flow map (EDMHeun's order), Ho et al.'s DDPM posterior
(Ancestral), the identities EDMHeun = Heun on EDM and Ancestral = DDIM(η=1) = SDE-DPM-Solver++1,
strong convergence against a fine solution driven by the same Brownian path, and two-sample
energy distances against fresh draws of the exact mixture.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdiff import timesteps
from jdiff.analytic import Gaussian, GaussianMixture
from jdiff.metrics import energy_distance
from jdiff.process import EDM, VE, VP, Discrete, Linear, linear_betas
from jdiff.sampling import solve
from jdiff.solvers import DDIM, EulerMaruyama, Heun
from jdiff.solvers.ancestral import Ancestral
from jdiff.solvers.base import AbstractDiffusionSolver
from jdiff.solvers.edm import EDMHeun, EDMStochastic
from jdiff.solvers.langevin import AnnealedLangevin, Langevin, PredictorCorrector
from jdiff.solvers.sde_dpm import SDEDPMSolverPP


def _mixture():
    return GaussianMixture(
        jnp.array([0.5, 0.3, 0.2]),
        jnp.array([[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5]]),
        jnp.stack([0.1 * jnp.eye(2)] * 3),
    )


def _rms(a, b):
    return float(jnp.sqrt(jnp.mean(jnp.sum((a - b) ** 2, axis=-1))))


# --- identities -----------------------------------------------------------------------------


def test_edm_heun_is_heun_in_sigma_on_edm(x64):
    proc = EDM()
    model = _mixture().model(proc, "eps")
    x_T = proc.prior_sample(jax.random.key(0), (16, 2))
    ts = timesteps.karras(proc, 6, end_at_zero=True)
    ref = solve(model, Heun(), x_T, ts)
    for solver in (EDMHeun(), EDMStochastic(s_churn=0.0)):
        sol = solve(model, solver, x_T, ts)
        assert int(sol.nfe) == int(ref.nfe) == 2 * 6 - 1
        err = float(jnp.max(jnp.abs(sol.samples - ref.samples)))
        assert err <= 1e-12 * float(jnp.max(jnp.abs(ref.samples))), err


def test_ancestral_equals_ddim_eta1_and_sde_dpm_solver_1(x64):
    proc = VP()
    model = _mixture().model(proc, "eps")
    x_T = proc.prior_sample(jax.random.key(1), (32, 2))
    ts = timesteps.log_snr(proc, 5, end_at_zero=True)
    key = jax.random.key(2)
    ref = solve(model, Ancestral(), x_T, ts, key=key).samples
    assert bool(jnp.all(jnp.isfinite(ref)))
    for solver in (DDIM(eta=1.0), SDEDPMSolverPP(order=1)):
        x = solve(model, solver, x_T, ts, key=key).samples
        np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-10)


def test_ancestral_is_ho_ddpm_chain_on_discrete_schedule(x64):
    """A full DDPM chain (Ho et al. 2020, eqs. 6–7, σ² = β̃) with the same noise draws."""
    betas = linear_betas(20, 1e-3, 0.3)
    proc = Discrete(betas)
    gm = _mixture()
    model = gm.model(proc, "x0")
    n = len(betas)
    ts = jnp.arange(n, -1, -1) / n  # every DDPM step, ending at t = 0 (ᾱ_0 = 1)
    key = jax.random.key(3)
    x_T = jax.random.normal(jax.random.key(4), (8, 2), jnp.float64)
    sol = solve(model, Ancestral(), x_T, ts, key=key)
    assert int(sol.nfe) == n

    abar = np.concatenate([[1.0], np.cumprod(1.0 - betas)])  # ᾱ_i, i = 0..n (Ho, variances)
    x = np.asarray(x_T)
    for step, i in enumerate(range(n, 0, -1)):
        x0 = np.asarray(gm.x0(jnp.asarray(x), i / n, proc))
        beta = betas[i - 1]
        mean = (
            np.sqrt(abar[i - 1]) * beta / (1 - abar[i]) * x0
            + np.sqrt(1 - beta) * (1 - abar[i - 1]) / (1 - abar[i]) * x
        )
        var = (1 - abar[i - 1]) / (1 - abar[i]) * beta
        k = jax.random.fold_in(jax.random.fold_in(key, step), 0)
        z = np.asarray(jax.random.normal(k, x.shape, jnp.float64))
        x = mean + np.sqrt(var) * z
    np.testing.assert_allclose(sol.samples, x, rtol=1e-9, atol=1e-9)


def test_ancestral_posterior_closed_form(x64):
    """`Ancestral.posterior` between consecutive steps is Ho et al.'s μ̃, β̃ (eqs. 6–7)."""
    betas = linear_betas(50, 1e-4, 0.05)
    proc = Discrete(betas)
    abar = np.concatenate([[1.0], np.cumprod(1.0 - betas)])
    x_s = jax.random.normal(jax.random.key(5), (4, 3), jnp.float64)
    x0 = jax.random.normal(jax.random.key(6), (4, 3), jnp.float64)
    for i in (50, 31, 7, 1):
        mean, var = Ancestral.posterior(proc, i / 50, (i - 1) / 50, x_s, x0)
        beta = betas[i - 1]
        mu = (
            np.sqrt(abar[i - 1]) * beta / (1 - abar[i]) * x0
            + np.sqrt(1 - beta) * (1 - abar[i - 1]) / (1 - abar[i]) * x_s
        )
        np.testing.assert_allclose(mean, mu, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(var, (1 - abar[i - 1]) / (1 - abar[i]) * beta, rtol=1e-10)


# --- deterministic order --------------------------------------------------------------------


@pytest.mark.parametrize("proc", [VP(), EDM()], ids=["vp", "edm"])
def test_edm_heun_observed_order_2(x64, proc):
    data = Gaussian(jnp.array([0.5, -0.3]), jnp.array([[0.6, 0.2], [0.2, 0.3]]))
    model = data.model(proc, "eps")
    x_T = proc.prior_sample(jax.random.key(7), (64, 2))
    errs = []
    for n in (16, 32):
        ts = timesteps.karras(proc, n)
        exact = data.flow_map(x_T, ts[0], ts[-1], proc)
        sol = solve(model, EDMHeun(), x_T, ts)
        assert int(sol.nfe) == 2 * n
        errs.append(_rms(sol.samples, exact))
    slope = math.log2(errs[0] / errs[1])
    assert abs(slope - EDMHeun().order(None)) < 0.3, (errs, slope)


# --- shared Brownian paths ------------------------------------------------------------------


class _BrownianSum(AbstractDiffusionSolver):
    """Test solver: x_t = x_s + W(-t) − W(-s), so the result is x_T + the path's total increment."""

    stochastic = True

    def order(self, terms):
        return 1

    def update(self, ctx, s, t, x, history):
        return x + ctx.brownian_increment(s, t, x), history, 0


def test_tree_brownian_path_is_shared_across_grids():
    proc = EDM()
    model = _mixture().model(proc, "eps")
    x_T = jnp.zeros((1000, 2))
    key = jax.random.key(8)
    span = proc.t_max - proc.t_min
    coarse = timesteps.uniform(proc, 3)
    fine = timesteps.karras(proc, 7)
    w3 = solve(model, _BrownianSum(), x_T, coarse, key=key, brownian="tree").samples
    w7 = solve(model, _BrownianSum(), x_T, fine, key=key, brownian="tree").samples
    # one path: the total increment does not depend on the grid (up to float32 rounding)
    np.testing.assert_allclose(w3, w7, rtol=0, atol=1e-4 * math.sqrt(span))
    # and it is Brownian: W(T) − W(0) ~ N(0, span) per coordinate
    assert abs(float(jnp.var(w3)) / span - 1.0) < 0.15
    # per-step fold_in noise is a different path for every grid
    f3 = solve(model, _BrownianSum(), x_T, coarse, key=key).samples
    f7 = solve(model, _BrownianSum(), x_T, fine, key=key).samples
    assert float(jnp.max(jnp.abs(f3 - f7))) > 1.0
    assert abs(float(jnp.var(f3)) / span - 1.0) < 0.15


def test_invalid_options_raise():
    proc = VP()
    model = _mixture().model(proc, "eps")
    x_T = jnp.zeros((2, 2))
    ts = timesteps.uniform(proc, 2)
    with pytest.raises(ValueError, match="fold_in"):
        solve(model, EulerMaruyama(), x_T, ts, key=jax.random.key(0), brownian="sobol")
    with pytest.raises(ValueError, match="pass key"):
        solve(model, Ancestral(), x_T, ts)
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        SDEDPMSolverPP(order=3)
    with pytest.raises(ValueError, match="valid choices"):
        SDEDPMSolverPP(order=2, variant="heun")
    with pytest.raises(ValueError, match="valid choices"):
        Langevin(norm="median")
    with pytest.raises(ValueError, match="snr"):
        Langevin(snr=0.0)
    with pytest.raises(ValueError, match="s_churn"):
        EDMStochastic(s_churn=-1.0)
    with pytest.raises(ValueError, match="predictor"):
        PredictorCorrector(Langevin())
    with pytest.raises(ValueError, match="n_steps_each"):
        AnnealedLangevin(n_steps_each=0)


# --- every solver, few steps ----------------------------------------------------------------

_PROCESSES = {
    "vp": VP(),
    "edm": EDM(),
    # α = 0 at t = 1 makes x/α, f = α'/α and the reverse SDE singular there: start below it
    "linear": Linear(t_max=0.999),
}
_SOLVERS = {
    "edm_heun": (EDMHeun(), lambda n, z: 2 * n - z),
    "edm_stochastic": (EDMStochastic(s_churn=10.0), lambda n, z: 2 * n - z),
    "ancestral": (Ancestral(), lambda n, z: n),
    "pc": (PredictorCorrector(EulerMaruyama(), Langevin(0.16, 1)), lambda n, z: 2 * n - z),
    "annealed": (AnnealedLangevin(n_steps_each=3), lambda n, z: 3 * (n - z) + z),
    "sde_dpm1": (SDEDPMSolverPP(order=1), lambda n, z: n),
    "sde_dpm2": (SDEDPMSolverPP(order=2), lambda n, z: n),
}


def _check_few_steps(solver_name, proc_name, n):
    solver, expected_nfe = _SOLVERS[solver_name]
    proc = _PROCESSES[proc_name]
    model = _mixture().model(proc, "eps")
    x_T = proc.prior_sample(jax.random.key(9), (16, 2))
    for end_at_zero in (False, True):  # same grid length: one compiled program
        ts = timesteps.uniform(proc, n, end_at_zero=end_at_zero)
        sol = solve(model, solver, x_T, ts, key=jax.random.key(10))
        assert bool(jnp.all(jnp.isfinite(sol.samples))), (solver_name, proc_name, n)
        assert int(sol.nfe) == expected_nfe(n, int(end_at_zero)), (solver_name, proc_name, n)


@pytest.mark.parametrize("solver_name", sorted(_SOLVERS))
def test_few_steps_finite_and_exact_nfe(solver_name):
    """Each solver once (one compiled program each): N = 1, 2, 3 in rotation over processes."""
    i = sorted(_SOLVERS).index(solver_name)
    proc_name = sorted(_PROCESSES)[i % 3]
    _check_few_steps(solver_name, proc_name, 1 + i % 3)


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("proc_name", sorted(_PROCESSES))
@pytest.mark.parametrize("solver_name", sorted(_SOLVERS))
def test_few_steps_all_combinations(solver_name, proc_name, n):
    _check_few_steps(solver_name, proc_name, n)


# --- strong convergence with a shared Brownian path -----------------------------------------


@pytest.mark.slow
def test_strong_convergence_with_shared_brownian_path(x64):
    """RMS error at t_min against a 4096-step Euler–Maruyama solution on the same path.

    The reverse SDE has additive noise (g depends on t only), so Euler–Maruyama and both
    SDE-DPM-Solver++ variants converge strongly with order 1 (measured: slopes
    ≈ 1.07, 0.93, 1.17 over N = 32..128 on log-SNR grids; the 2M update has the smaller error).
    """
    proc = VP()
    data = GaussianMixture(
        jnp.array([0.5, 0.5]),
        jnp.array([[-1.0, 0.0], [1.0, 0.0]]),
        jnp.stack([0.5 * jnp.eye(2)] * 2),
    )
    model = data.model(proc, "x0")
    x_T = proc.prior_sample(jax.random.key(11), (64, 2))
    key = jax.random.key(12)
    ref = solve(
        model, EulerMaruyama(), x_T, timesteps.log_snr(proc, 4096), key=key, brownian="tree"
    ).samples
    ns = np.array([32, 64, 128])
    for solver in (EulerMaruyama(), SDEDPMSolverPP(order=1), SDEDPMSolverPP(order=2)):
        errs = np.array(
            [
                _rms(
                    solve(
                        model,
                        solver,
                        x_T,
                        timesteps.log_snr(proc, int(n)),
                        key=key,
                        brownian="tree",
                    ).samples,
                    ref,
                )
                for n in ns
            ]
        )
        assert np.all(np.diff(errs) < 0), errs
        slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
        assert abs(slope - solver.strong_order(None)) < 0.3, (type(solver).__name__, errs, slope)


# --- distributions --------------------------------------------------------------------------

_N_SAMPLES = 2000


@pytest.fixture(scope="module")
def energy_threshold():
    """Null distribution of the energy distance between two fresh draws of 2000 points.

    Threshold = mean + 4 std over 10 null pairs (≈ 5e-3 here); a sampler whose output is off by
    a 10% scale (energy distance ≈ 1.5e-2) or a 0.1 shift (≈ 6e-3) fails it.
    """
    gm = _mixture()
    ed = jax.jit(energy_distance)
    null = np.array(
        [
            float(
                ed(
                    gm.sample(jax.random.key(100 + i), _N_SAMPLES),
                    gm.sample(jax.random.key(200 + i), _N_SAMPLES),
                )
            )
            for i in range(10)
        ]
    )
    threshold = float(null.mean() + 4 * null.std())
    ref = gm.sample(jax.random.key(300), _N_SAMPLES)
    off = float(ed(1.1 * gm.sample(jax.random.key(301), _N_SAMPLES), ref))
    assert off > threshold, (off, threshold)  # the test has power
    return threshold, ed, ref


_DIST_CASES = {
    "edm_stochastic": (
        EDM(),
        EDMStochastic(s_churn=20.0),
        lambda p: timesteps.karras(p, 24, end_at_zero=True),
    ),
    "pc_em_langevin": (
        VP(),
        PredictorCorrector(EulerMaruyama(), Langevin(0.16, 1)),
        lambda p: timesteps.uniform(p, 200, end_at_zero=True),
    ),
    "annealed_langevin_ve": (VE(), AnnealedLangevin(100, 2e-5), lambda p: timesteps.log_snr(p, 20)),
    "sde_dpm_solver_2m": (VP(), SDEDPMSolverPP(order=2), lambda p: timesteps.log_snr(p, 40)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(_DIST_CASES))
def test_sampling_exact_mixture_reproduces_data(case, energy_threshold):
    threshold, ed, ref = energy_threshold
    proc, solver, grid = _DIST_CASES[case]
    model = _mixture().model(proc, "eps")
    x_T = proc.prior_sample(jax.random.key(13), (_N_SAMPLES, 2))
    x = solve(model, solver, x_T, grid(proc), key=jax.random.key(14)).samples
    assert float(ed(x, ref)) < threshold, (case, float(ed(x, ref)), threshold)
