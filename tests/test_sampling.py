"""Sampling driver and the first solvers against closed-form truth.

Gaussian data N(μ, c² I) gives a linear PF-ODE with the exact flow
x_t = α_t μ + (R_t / R_s)(x_s − α_s μ), R_t² = α_t² c² + σ_t² (monograph §3.0).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdiff
from jdiff import timesteps
from jdiff.model import Model
from jdiff.process import EDM, VE, VP, Discrete, Linear, linear_betas
from jdiff.solvers import DDIM, Diffrax, Euler, EulerMaruyama, Heun

C, MU = 0.5, 0.3


def _gauss_x0(params, x, t, cond, process):
    c, mu = params
    a = process.alpha(t)[:, None]
    s = process.sigma(t)[:, None]
    return mu + a * c**2 / (a**2 * c**2 + s**2) * (x - a * mu)


def gaussian_model(process, c=C, mu=MU):
    """Exact x0-model for N(mu, c² I) data."""

    def apply(params, x, t, cond):
        return _gauss_x0(params, x, t, cond, process)

    return Model(apply, (jnp.asarray(c), jnp.asarray(mu)), process, "x0")


def exact_flow(process, x, s, t, c=C, mu=MU):
    r = lambda u: jnp.sqrt(process.alpha(u) ** 2 * c**2 + process.sigma(u) ** 2)  # noqa: E731
    return process.alpha(t) * mu + r(t) / r(s) * (x - process.alpha(s) * mu)


def observed_order(process, solver, grid, ns):
    model = gaussian_model(process)
    x_T = process.prior_sample(jax.random.key(0), (8, 2))
    errs = []
    for n in ns:
        ts = grid(process, n)
        out = jdiff.sample(model, solver, x_T, ts)
        errs.append(float(jnp.max(jnp.abs(out - exact_flow(process, x_T, ts[0], ts[-1])))))
    return -np.polyfit(np.log(ns), np.log(errs), 1)[0], errs


@pytest.mark.parametrize(
    "process,grid", [(VP(), timesteps.log_snr), (EDM(), timesteps.karras)], ids=["vp", "edm"]
)
@pytest.mark.parametrize("solver,order", [(Euler(), 1), (Heun(), 2)], ids=["euler", "heun"])
def test_observed_order(process, grid, solver, order, x64):
    slope, errs = observed_order(process, solver, grid, [32, 64, 128, 256])
    assert abs(slope - order) < 0.3, (slope, errs)
    assert solver.order(None) == order


def test_euler_is_ddim_on_linear_path(x64):
    p = Linear()
    model = gaussian_model(p)
    x_T = p.prior_sample(jax.random.key(3), (6, 2))
    ts = timesteps.uniform(p, 7, end_at_zero=True)
    np.testing.assert_allclose(
        jdiff.sample(model, Euler(), x_T, ts), jdiff.sample(model, DDIM(), x_T, ts), rtol=1e-12
    )


def _ddim_step_reference(p, x0, eps, s, t, eta, z):
    a_s, s_s, a_t, s_t = p.alpha(s), p.sigma(s), p.alpha(t), p.sigma(t)
    # printed DDIM (Song et al. 2021, eq. 12 with σ_t(η) of eq. 16), in jdiff's notation
    c = eta * (s_t / s_s) * jnp.sqrt(s_s**2 - (a_s / a_t) ** 2 * s_t**2)
    return a_t * x0 + jnp.sqrt(s_t**2 - c**2) * eps + c * z


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_closed_form(eta, x64):
    p = VP()
    model = gaussian_model(p)
    x = jax.random.normal(jax.random.key(1), (5, 2))
    ts = jnp.asarray([0.8, 0.5])
    key = jax.random.key(7)
    out = jdiff.sample(model, DDIM(eta), x, ts, key=key)
    x0, eps = model.x0_eps(x, 0.8)
    # the documented noise: normal(fold_in(fold_in(key, step), index))
    z = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 0), 0), x.shape, x.dtype)
    ref = _ddim_step_reference(p, x0, eps, 0.8, 0.5, eta, z)
    np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-12)


def test_ddim_eta1_is_ddpm_posterior_step(x64):
    betas = linear_betas(50)
    p = Discrete(betas)
    model = gaussian_model(p)
    abar = np.cumprod(1 - betas)
    n = 30  # step from x_n (t_n = (n+1)/N) to x_{n-1}
    t_s, t_t = (n + 1) / 50, n / 50
    x = jax.random.normal(jax.random.key(2), (5, 2))
    key = jax.random.key(11)
    out = jdiff.sample(model, DDIM(1.0), x, jnp.asarray([t_s, t_t]), key=key)
    x0 = model.x0(x, t_s)
    # Ho et al. (2020) eq. 6–7 posterior q(x_{n−1} | x_n, x0)
    mean = (np.sqrt(abar[n - 1]) * betas[n] / (1 - abar[n])) * x0 + (
        np.sqrt(1 - betas[n]) * (1 - abar[n - 1]) / (1 - abar[n])
    ) * x
    var = (1 - abar[n - 1]) / (1 - abar[n]) * betas[n]
    z = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 0), 0), x.shape, x.dtype)
    np.testing.assert_allclose(out, mean + np.sqrt(var) * z, rtol=1e-9, atol=1e-11)


def test_grid_ending_at_sigma_zero(x64):
    for p in (VP(), Linear(), EDM()):
        model = gaussian_model(p)
        x_T = p.prior_sample(jax.random.key(0), (4, 2))
        ts = timesteps.uniform(p, 5, end_at_zero=True)
        for solver, nfe in ((Euler(), 5), (Heun(), 9), (DDIM(), 5)):
            sol = jdiff.solve(model, solver, x_T, ts)
            assert np.all(np.isfinite(np.asarray(sol.samples)))
            assert int(sol.nfe) == nfe
        # DDIM into σ = 0 returns the x0 prediction of the last step
        traj = jdiff.solve(model, DDIM(), x_T, ts, save_trajectory=True).trajectory
        assert traj.shape == (6, 4, 2)
        np.testing.assert_allclose(traj[-1], model.x0(traj[-2], ts[-2]), rtol=1e-12)


def test_adaptive_reference_and_nfe(x64):
    p = VP()
    model = gaussian_model(p)
    x_T = p.prior_sample(jax.random.key(0), (4, 2))
    ts = jnp.asarray([1.0, 1e-3])
    sol = jdiff.solve(model, Diffrax(diffrax.Dopri8(), rtol=1e-10, atol=1e-10), x_T, ts)
    np.testing.assert_allclose(sol.samples, exact_flow(p, x_T, 1.0, 1e-3), rtol=1e-7, atol=1e-8)
    assert int(sol.nfe) > 0
    with pytest.raises(ValueError, match="adaptive"):
        Diffrax(diffrax.Euler())


def test_nfe_counts_real_network_calls():
    # count the evaluations that actually run, with a host callback inside apply_fn
    p = VP()
    base = gaussian_model(p)
    calls = []

    def apply(params, x, t, cond):
        jax.debug.callback(lambda: calls.append(1))
        return base.apply_fn(params, x, t, cond)

    model = Model(apply, base.params, p, "x0")
    x_T = jnp.ones((2, 2))
    for solver, ts in (
        (Heun(), timesteps.uniform(p, 6, end_at_zero=True)),
        (DDIM(), timesteps.uniform(p, 6)),
        (Diffrax(diffrax.Tsit5(), rtol=1e-6, atol=1e-6), timesteps.uniform(p, 2)),
    ):
        calls.clear()
        sol = jdiff.solve(model, solver, x_T, ts)
        jax.effects_barrier()
        assert int(sol.nfe) == len(calls), type(solver).__name__


MIXTURE = dict(
    weights=jnp.asarray([0.5, 0.3, 0.2]),
    means=jnp.asarray([[-1.0, -0.5], [1.0, 0.0], [0.0, 1.5]]),
    covs=jnp.asarray(
        [[[0.30, 0.15], [0.15, 0.20]], [[0.10, -0.05], [-0.05, 0.40]], [[0.05, 0.0], [0.0, 0.05]]]
    ),
)


@pytest.mark.parametrize("solver", [Heun(), EulerMaruyama()], ids=["ode", "sde"])
def test_sampling_exact_mixture_reproduces_it(solver):
    from jdiff.analytic import GaussianMixture
    from jdiff.metrics import energy_distance

    mix = GaussianMixture(**MIXTURE)
    p = VP()
    model = mix.model(p, "eps")
    n = 2000
    x_T = p.prior_sample(jax.random.key(0), (n, 2))
    ts = timesteps.uniform(p, 200)
    out = jdiff.sample(model, solver, x_T, ts, key=jax.random.key(5))
    ref = mix.sample(jax.random.key(6), n)
    # the same statistic between two independent data draws sets the scale of sampling noise
    base = abs(float(energy_distance(mix.sample(jax.random.key(7), n), ref)))
    got = float(energy_distance(out, ref))
    assert got < 3 * base + 2e-3, (got, base)
    # and a wrong model (means shifted by 0.3) is detected by the same test
    shifted = GaussianMixture(MIXTURE["weights"], MIXTURE["means"] + 0.3, MIXTURE["covs"])
    bad = float(energy_distance(shifted.sample(jax.random.key(8), n), ref))
    assert bad > 3 * base + 2e-3


def test_bad_inputs():
    p = VP()
    model = gaussian_model(p)
    x = jnp.ones((2, 2))
    with pytest.raises(ValueError, match="strictly decreasing"):
        jdiff.sample(model, Euler(), x, jnp.asarray([0.5, 0.8]))
    with pytest.raises(ValueError, match="domain"):
        jdiff.sample(model, Euler(), x, jnp.asarray([1.5, 0.5]))
    with pytest.raises(ValueError, match="domain"):
        jdiff.sample(Model(model.apply_fn, model.params, VE(), "x0"), Euler(), x, [1.0, -0.1])
    with pytest.raises(ValueError, match="1-D"):
        jdiff.sample(model, Euler(), x, jnp.asarray([1.0]))
    with pytest.raises(ValueError, match="key"):
        jdiff.sample(model, EulerMaruyama(), x, jnp.asarray([1.0, 0.5]))
    with pytest.raises(ValueError, match="jdiff solver"):
        jdiff.sample(model, diffrax.Tsit5(), x, jnp.asarray([1.0, 0.5]))
    with pytest.raises(ValueError, match="n_steps"):
        timesteps.uniform(p, 0)
    with pytest.raises(ValueError, match="valid choices"):
        timesteps.get_grid("cosine")
    with pytest.raises(ValueError, match="σ = 0"):
        timesteps.uniform(VE(), 4, end_at_zero=True)
    with pytest.raises(ValueError, match="finite log-SNR"):
        timesteps.log_snr(Linear(), 4)
    bad = Model(lambda prm, x, t, c: x[:, :1], None, p, "eps")
    with pytest.raises(ValueError, match="shaped like x"):
        jdiff.sample(bad, Euler(), x, jnp.asarray([1.0, 0.5]))
    # a traced grid is checked inside the compiled program
    f = jax.jit(lambda ts: jdiff.sample(model, Euler(), x, ts))
    with pytest.raises(Exception, match="strictly decreasing"):
        f(jnp.asarray([0.5, 0.9])).block_until_ready()


def test_grids_shapes_and_monotone():
    for p in (VP(), EDM(), Linear()):
        for name, grid in timesteps.GRIDS.items():
            kw = (
                {"t_start": 0.999}
                if (isinstance(p, Linear) and name in ("log_snr", "karras"))
                else {}
            )
            for end0 in (False, True):
                ts = grid(p, 6, end_at_zero=end0, **kw)
                assert ts.shape == (7,)
                assert np.all(np.diff(np.asarray(ts)) < 0)
                assert float(ts[-1]) == pytest.approx(p.t_zero if end0 else p.t_min, rel=1e-6)
    lam = VP().lam(timesteps.log_snr(VP(), 8))
    np.testing.assert_allclose(np.diff(np.asarray(lam)), np.diff(np.asarray(lam))[0], rtol=1e-4)
    ks = timesteps.karras(EDM(), 4)
    ref = (80 ** (1 / 7) + np.arange(5) / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(ks, ref, rtol=1e-5)
    np.testing.assert_allclose(timesteps.custom(VP(), [1.0, 0.5, 0.1]), [1.0, 0.5, 0.1])


def test_no_recompilation_for_new_values():
    p = VP()

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(model, x_T, ts):
        return jdiff.sample(model, Heun(), x_T, ts)

    model = gaussian_model(p)
    x_T = jnp.ones((3, 2))
    ts = timesteps.uniform(p, 4)
    run(model, x_T, ts)
    run(model.with_params((jnp.asarray(0.9), jnp.asarray(-0.1))), 2 * x_T, ts)
    run(model, x_T, timesteps.log_snr(p, 4))  # same length, other values


def test_top_level_sample_jits_once():
    # jdiff.solve is itself jitted: same shapes, new values → one compiled program
    p = EDM()
    model = gaussian_model(p)
    before = jdiff.sampling._solve._cached._cache_size()
    for scale in (1.0, 2.0, 3.0):
        jdiff.sample(model, DDIM(), scale * jnp.ones((3, 2)), timesteps.karras(p, 3))
    assert jdiff.sampling._solve._cached._cache_size() - before <= 1
