"""Tests for `jdiff.likelihood`: PF-ODE log-likelihood, bits/dim, DDPM variational bound.

Truth comes from `jdiff.analytic`: for an exact mixture model the PF-ODE log-likelihood must equal
$\\log p_{t_0}(x) + \\log\\pi(x_{t_1}) - \\log p_{t_1}(x_{t_1})$, all closed forms.
"""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdiff.analytic import Gaussian, GaussianMixture
from jdiff.likelihood import (
    bits_per_dim,
    bpd_from_log_prob,
    bpd_offset,
    ddpm_elbo,
    dequantize,
    discretized_gaussian_log_prob,
    log_likelihood,
)
from jdiff.model import Model
from jdiff.process import EDM, VP, Discrete, Linear, linear_betas

TOL = dict(solver=diffrax.Dopri5(), rtol=1e-9, atol=1e-9)
PROCESSES = {"vp": (VP, "eps"), "edm": (EDM, "eps"), "linear": (Linear, "velocity")}


def _mixture(d, k=3, seed=0):
    rng = np.random.default_rng(seed + d)
    a = rng.normal(size=(k, d, d)) * 0.35
    covs = a @ np.swapaxes(a, 1, 2) + 0.05 * np.eye(d)
    means = rng.normal(size=(k, d)) * 1.2
    return GaussianMixture(np.array([0.5, 0.3, 0.2]), means, covs)


def _implied(mix, proc, x, z):
    """The exact value the PF-ODE implies, and the two gaps to log p_0."""
    lp_start = mix.marginal_log_prob(x, proc.t_min, proc)
    prior_gap = proc.prior_logp(z) - mix.marginal_log_prob(z, proc.t_max, proc)
    return lp_start + prior_gap, lp_start - mix.log_prob(x), prior_gap


@pytest.mark.parametrize("d", [2, pytest.param(8, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", list(PROCESSES))
def test_exact_mixture_matches_pf_ode(x64, name, d):
    cls, pred = PROCESSES[name]
    proc = cls()
    mix = _mixture(d)
    x = mix.sample(jax.random.key(1), 3)
    res = log_likelihood(mix.model(proc, pred), x, **TOL)
    implied, trunc, prior_gap = _implied(mix, proc, x, res.z)
    err = np.max(np.abs(res.log_prob - implied))
    assert err < 1e-5, (name, d, err)
    # with the exact prior log p_{t_max} the result is log p_{t_min}(x) itself
    exact_prior = mix.marginal_log_prob(res.z, proc.t_max, proc) + res.delta_logp
    np.testing.assert_allclose(exact_prior, mix.marginal_log_prob(x, proc.t_min, proc), atol=1e-5)
    np.testing.assert_allclose(res.log_prob, res.prior_logp + res.delta_logp, rtol=0, atol=1e-12)
    # the two gaps to log p_0 are real and of the documented size
    assert np.all(np.abs(trunc) < 0.2) and np.all(np.abs(prior_gap) < 0.2)
    if name == "linear":  # α(1) = 0: the N(0, I) prior is exact
        assert np.max(np.abs(prior_gap)) < 1e-10
    else:
        assert np.max(np.abs(prior_gap)) > 1e-6
    assert res.z.shape == x.shape and res.log_prob.shape == (3,)


def test_prior_logp_argument_gives_log_p_tmin(x64):
    proc = VP()
    mix = _mixture(2)
    x = mix.sample(jax.random.key(2), 4)
    res = log_likelihood(
        mix.model(proc, "x0"),
        x,
        prior_logp=lambda z: mix.marginal_log_prob(z, proc.t_max, proc),
        **TOL,
    )
    np.testing.assert_allclose(res.log_prob, mix.marginal_log_prob(x, proc.t_min, proc), atol=1e-6)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_unbiased(x64, probe):
    proc = VP()
    mix = _mixture(8)
    model = mix.model(proc, "eps")
    x = mix.sample(jax.random.key(3), 1)
    exact = float(log_likelihood(model, x, rtol=1e-7, atol=1e-7).log_prob[0])
    n = 256  # one point repeated: each copy gets its own probe, so n independent estimates
    res = log_likelihood(
        model,
        jnp.repeat(x, n, axis=0),
        rtol=1e-7,
        atol=1e-7,
        divergence="hutchinson",
        probe=probe,
        key=jax.random.key(4),
    )
    est = np.asarray(res.log_prob)
    se = est.std(ddof=1) / math.sqrt(n)
    assert se > 1e-3  # the estimator really is random
    assert abs(est.mean() - exact) < 4 * se, (est.mean(), exact, se)


@pytest.mark.slow
def test_vmap_over_examples(x64):
    proc = VP()
    mix = _mixture(2)
    model = mix.model(proc, "eps")
    x = mix.sample(jax.random.key(5), 3)
    batched = log_likelihood(model, x, **TOL).log_prob
    per_example = jax.vmap(lambda xi: log_likelihood(model, xi[None], **TOL).log_prob[0])(x)
    np.testing.assert_allclose(per_example, batched, atol=1e-6)
    np.testing.assert_allclose(per_example, _implied(mix, proc, x, jnp.zeros_like(x))[0], atol=0.1)


# --- gradients and maximum likelihood on a tiny network ----------------------------------------


def _mlp_apply(params, x, t, cond):
    h = jnp.tanh(x @ params["w1"] + t[:, None] * params["wt"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def _mlp_params(key, d=2, h=8, dtype=jnp.float64):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "w1": jax.random.normal(k1, (d, h), dtype) / math.sqrt(d),
        "wt": jax.random.normal(k2, (h,), dtype),
        "b1": jnp.zeros((h,), dtype),
        "w2": 0.3 * jax.random.normal(k3, (h, d), dtype) / math.sqrt(h),
        "b2": jnp.zeros((d,), dtype),
    }


@pytest.mark.slow
def test_gradient_matches_finite_differences_and_ml_step_decreases_nll(x64):
    proc = VP()
    model = Model(_mlp_apply, _mlp_params(jax.random.key(6)), proc, "eps")
    data = Gaussian(jnp.array([0.5, -0.3]), jnp.array([[0.3, 0.1], [0.1, 0.2]]))
    x = data.mixture.sample(jax.random.key(7), 16)

    @jax.jit
    def nll_and_grad(params):
        def nll(p):
            res = log_likelihood(model.with_params(p), x, **TOL)
            return -jnp.mean(res.log_prob)

        return jax.value_and_grad(nll)(params)

    params = model.params
    f0, g = nll_and_grad(params)
    direction = jax.tree.map(lambda p: jax.random.normal(jax.random.key(8), p.shape, p.dtype), g)
    h = 1e-4
    fp, _ = nll_and_grad(jax.tree.map(lambda p, v: p + h * v, params, direction))
    fm, _ = nll_and_grad(jax.tree.map(lambda p, v: p - h * v, params, direction))
    fd = (fp - fm) / (2 * h)
    ad = sum(
        jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(direction), strict=True)
    )
    np.testing.assert_allclose(ad, fd, rtol=1e-5)

    opt = optax.adam(3e-2)
    state = opt.init(params)
    losses = [float(f0)]
    for _ in range(4):
        _, g = nll_and_grad(params)
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        losses.append(float(nll_and_grad(params)[0]))
    assert losses[-1] < losses[0] - 0.05, losses


# --- validation ------------------------------------------------------------------------------


def test_structural_errors():
    proc = Linear()
    mix = _mixture(2)
    x = jnp.zeros((2, 2))
    with pytest.raises(ValueError, match="exact"):
        log_likelihood(mix.model(proc, "velocity"), x, divergence="trace")
    with pytest.raises(ValueError, match="rademacher"):
        log_likelihood(mix.model(proc, "velocity"), x, divergence="hutchinson", probe="sphere")
    with pytest.raises(ValueError, match="key"):
        log_likelihood(mix.model(proc, "velocity"), x, divergence="hutchinson")
    with pytest.raises(ValueError, match="adaptive"):
        log_likelihood(mix.model(proc, "velocity"), x, solver=diffrax.Euler())
    with pytest.raises(ValueError, match="α"):
        log_likelihood(mix.model(proc, "eps"), x)  # eps cannot give the velocity at α = 0
    with pytest.raises(ValueError, match="t_start < t_end"):
        log_likelihood(mix.model(proc, "velocity"), x, t_start=0.5, t_end=0.2)
    with pytest.raises(ValueError, match="σ = 0"):
        log_likelihood(mix.model(proc, "velocity"), x, t_start=0.0)
    with pytest.raises(ValueError, match="batch"):
        log_likelihood(mix.model(proc, "velocity"), jnp.zeros(2))


# --- bits per dimension ----------------------------------------------------------------------


def test_bpd_offset_arithmetic_on_uniform_toy():
    d = 5
    # uniform 8-bit data has exactly 8 bits/dim; its dequantized density is uniform on the range
    assert bpd_offset(False) == 8.0 and bpd_offset(True) == 7.0
    np.testing.assert_allclose(bpd_from_log_prob(jnp.zeros(3), d, centered=False), 8.0)
    np.testing.assert_allclose(bpd_from_log_prob(jnp.full(3, -d * math.log(2)), d, True), 8.0)
    # a density 2x the uniform one on [0,1] in every dim saves one bit per dim
    np.testing.assert_allclose(bpd_from_log_prob(jnp.full(3, d * math.log(2)), d), 7.0)
    k = jnp.arange(256, dtype=jnp.uint8).reshape(256, 1)
    y = dequantize(jax.random.key(0), k)
    assert np.all(np.floor(np.asarray(y) * 256).astype(int) == np.asarray(k))
    yc = dequantize(jax.random.key(0), k, centered=True)
    np.testing.assert_allclose(yc, 2 * y - 1, atol=1e-6)


def test_bits_per_dim_end_to_end_exact(x64):
    proc = VP()
    mix = _mixture(2)
    model = mix.model(proc, "eps")
    k = jnp.array([[10, 200], [128, 128], [60, 90]], jnp.uint8)
    out = bits_per_dim(model, k, key=jax.random.key(9), centered=True, **TOL)
    y = out.y
    assert np.all(np.floor((np.asarray(y) + 1) / 2 * 256) == np.asarray(k))
    implied = _implied(mix, proc, y, out.likelihood.z)[0]
    np.testing.assert_allclose(out.bpd, -implied / (2 * math.log(2)) + 7.0, atol=1e-5)
    with pytest.raises(ValueError, match="key"):
        bits_per_dim(model, k)


# --- DDPM variational bound ------------------------------------------------------------------


def test_discretized_decoder_is_normalised(x64):
    grid = jnp.linspace(-1.0, 1.0, 256)[:, None]
    mean = jnp.array([[-1.2, -0.3, 0.0, 0.7, 1.0]])
    std = jnp.array([[0.01, 0.3, 1e-3, 2.0, 0.05]])
    p = jnp.exp(discretized_gaussian_log_prob(grid, mean, std))
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-10)
    assert np.all(np.isfinite(discretized_gaussian_log_prob(grid, mean, std)))


_GAUSS = None


def _gauss_setup():
    data = Gaussian(jnp.array([0.2, -0.1]), jnp.array([[0.3, 0.1], [0.1, 0.2]]))
    model = data.model(Discrete(linear_betas(1000)), "eps")
    x = data.mixture.sample(jax.random.key(10), 2048)
    return model, x, np.asarray(data.mixture.log_prob(x))


def _mean_gap(logp, elbo):
    """Mean and standard error of log p(x) − ELBO(x); its expectation KL(p||p_θ) + E gap is ≥ 0."""
    gap = logp - np.asarray(elbo)
    return gap.mean(), gap.std(ddof=1) / math.sqrt(gap.size)


def test_ddpm_elbo_bounds_gaussian_log_likelihood(x64):
    model, x, logp = _gauss_setup()
    res = ddpm_elbo(model, x, jax.random.key(11), decoder="gaussian", variance="beta")
    gap, se = _mean_gap(logp, res.elbo)
    assert gap > -4 * se, (gap, se)
    assert gap < 0.02 + 4 * se, (gap, se)  # N = 1000 with β variance: nearly tight
    parts = np.asarray(res.prior_kl + res.diffusion_kl + res.reconstruction)
    np.testing.assert_allclose(res.elbo, -parts, atol=1e-9)
    per_step = np.asarray(res.per_step)
    assert per_step.shape == (2048, 1000)
    np.testing.assert_allclose(
        per_step.sum(1), np.asarray(res.diffusion_kl + res.reconstruction), rtol=1e-10
    )
    assert np.all(per_step[:, 1:] >= 0)  # KL terms


@pytest.mark.slow
def test_ddpm_elbo_posterior_variance_and_sampled_estimator(x64):
    model, x, logp = _gauss_setup()
    full = ddpm_elbo(model, x, jax.random.key(11), decoder="gaussian", variance="beta")
    post = ddpm_elbo(model, x, jax.random.key(11), decoder="gaussian", variance="posterior")
    gap, se = _mean_gap(logp, post.elbo)
    # β̃ under-estimates the reverse variance in the first steps: ~π²/24 nats/dim (+ decoder)
    assert gap > 0.5, (gap, se)
    sampled = ddpm_elbo(
        model, x, jax.random.key(12), decoder="gaussian", variance="beta", terms="sampled"
    )
    e_s = np.asarray(sampled.elbo)
    se = e_s.std(ddof=1) / math.sqrt(e_s.size)
    assert abs(e_s.mean() - np.asarray(full.elbo).mean()) < 4 * se  # unbiased for the full sum
    assert sampled.per_step is None


@pytest.mark.slow
def test_ddpm_elbo_discretized_bounds_discrete_entropy(x64):
    # 8-bit data from a quantized Gaussian: E[ELBO] <= E[log P_data] = −H exactly computable
    mu, s = 0.1, 0.3
    grid = jnp.linspace(-1.0, 1.0, 256)
    logp_grid = discretized_gaussian_log_prob(grid, mu, s)
    k = jax.random.categorical(jax.random.key(13), logp_grid, shape=(512,))
    x = grid[k][:, None]
    model = Gaussian(jnp.array([mu]), jnp.array([[s**2]])).model(Discrete(linear_betas(200)), "x0")
    res = ddpm_elbo(model, x, jax.random.key(14), variance="beta")
    gap = np.asarray(logp_grid[k] - res.elbo)
    se = gap.std(ddof=1) / math.sqrt(gap.size)
    assert gap.mean() > -4 * se and gap.mean() < 0.2, (gap.mean(), se)
    assert np.all(np.asarray(res.elbo) < 0)  # a probability bound: log P <= 0
    k8 = ((np.asarray(x) + 1) * 127.5).round().astype(np.uint8)
    res8 = ddpm_elbo(model, k8, jax.random.key(14), variance="beta")
    np.testing.assert_allclose(res8.elbo, res.elbo, atol=1e-9)


def test_ddpm_elbo_errors():
    mix = _mixture(2)
    with pytest.raises(ValueError, match="Discrete"):
        ddpm_elbo(mix.model(VP()), jnp.zeros((2, 2)), jax.random.key(0))
    model = mix.model(Discrete(linear_betas(10)))
    with pytest.raises(ValueError, match="posterior"):
        ddpm_elbo(model, jnp.zeros((2, 2)), jax.random.key(0), variance="learned")
    with pytest.raises(ValueError, match="discretized"):
        ddpm_elbo(model, jnp.zeros((2, 2)), jax.random.key(0), decoder="logistic")


def test_nfe_counts_the_network_calls_that_run():
    # a host callback inside apply_fn counts the evaluations that actually execute
    mix = GaussianMixture(
        jnp.asarray([0.5, 0.5]),
        jnp.asarray([[-1.0, 0.0], [1.0, 0.0]]),
        jnp.stack([0.1 * jnp.eye(2)] * 2),
    )
    base = mix.model(VP(), "eps")
    calls = []

    def apply(params, x, t, cond):
        jax.debug.callback(lambda: calls.append(1))
        return base.apply_fn(params, x, t, cond)

    model = Model(apply, base.params, base.process, "eps")
    res = log_likelihood(model, mix.sample(jax.random.key(0), 4), rtol=1e-5, atol=1e-5)
    jax.effects_barrier()
    assert int(res.nfe) == len(calls) > 0
