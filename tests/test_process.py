"""Processes against their closed-form identities (float64)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jdiff.process import (
    EDM,
    VE,
    VP,
    Discrete,
    Linear,
    SubVP,
    Trig,
    VPCosine,
    get_process,
    linear_betas,
)

PROCESSES = {
    "vp": lambda: VP(),
    "vp_custom": lambda: VP(beta_min=0.05, beta_max=12.0),
    "vp_cosine": lambda: VPCosine(),
    "subvp": lambda: SubVP(),
    "ve": lambda: VE(),
    "edm": lambda: EDM(),
    "linear": lambda: Linear(),
    "trig": lambda: Trig(),
    "discrete": lambda: Discrete(linear_betas(100)),
}


def _times(p, n=9):
    # interior points, away from the singular ends
    lo = p.t_min if p.t_zero is None else max(p.t_min, 1e-3 * p.t_max)
    return jnp.linspace(lo, p.t_max * (1 - 1e-3), n)


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_derivatives_and_g2(name, x64):
    p = PROCESSES[name]()
    t = _times(p)
    da = jax.vmap(jax.grad(p.alpha))(t)
    ds = jax.vmap(jax.grad(p.sigma))(t)
    np.testing.assert_allclose(p.dalpha(t), da, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.dsigma(t), ds, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.f(t), da / p.alpha(t), rtol=1e-9)
    # g² = d(σ²)/dt − 2 f σ²
    ds2 = jax.vmap(jax.grad(lambda s: p.sigma(s) ** 2))(t)
    np.testing.assert_allclose(p.g2(t), ds2 - 2 * p.f(t) * p.sigma(t) ** 2, rtol=1e-8)
    assert np.all(np.asarray(p.g2(t)) > 0)


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_t_of_lam_inverts_lam(name, x64):
    p = PROCESSES[name]()
    t = _times(p)
    lam = p.lam(t)
    assert np.all(np.diff(np.asarray(lam)) < 0), "λ must decrease in t"
    np.testing.assert_allclose(p.t_of_lam(lam), t, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(lam, jnp.log(p.alpha(t) / p.sigma(t)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["vp", "vp_cosine", "trig", "discrete"])
def test_variance_preserving(name, x64):
    p = PROCESSES[name]()
    t = _times(p)
    np.testing.assert_allclose(p.alpha(t) ** 2 + p.sigma(t) ** 2, 1.0, rtol=1e-12)


def test_closed_forms(x64):
    t = jnp.linspace(0.01, 0.99, 7)
    vp = VP()
    np.testing.assert_allclose(vp.g2(t), 0.1 + t * 19.9, rtol=1e-12)
    np.testing.assert_allclose(vp.alpha(t), jnp.exp(-0.25 * t**2 * 19.9 - 0.05 * t), rtol=1e-12)
    sub = SubVP()
    np.testing.assert_allclose(sub.sigma(t), 1 - vp.alpha(t) ** 2, rtol=1e-12)
    np.testing.assert_allclose(sub.g2(t), vp.g2(t) * (1 - vp.alpha(t) ** 4), rtol=1e-10)
    ve = VE(0.01, 50.0)
    np.testing.assert_allclose(ve.sigma(t), 0.01 * 5000.0**t, rtol=1e-12)
    np.testing.assert_allclose(ve.g2(t), 2 * ve.sigma(t) ** 2 * math.log(5000.0), rtol=1e-12)
    cos = VPCosine(s=0.008)
    s = 0.008
    ref = jnp.cos((t + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)
    np.testing.assert_allclose(cos.alpha(t), ref, rtol=1e-12)
    np.testing.assert_allclose(Linear().alpha(t), 1 - t)
    np.testing.assert_allclose(Trig().sigma(t), jnp.sin(math.pi * t / 2), rtol=1e-12)
    # σ = 0 at t_zero, exactly
    for p in (VP(), VPCosine(), SubVP(), EDM(), Linear(), Trig(), Discrete(linear_betas(10))):
        assert float(p.sigma(jnp.asarray(p.t_zero))) == 0.0
    # α = 0 exactly at t = 1 for the flow paths (prior N(0, I) exact there)
    assert float(Trig().alpha(1.0)) == 0.0 and float(Linear().alpha(1.0)) == 0.0


def test_discrete_matches_beta_array(x64):
    betas = linear_betas(1000)
    p = Discrete(betas)
    alphas_cumprod = np.cumprod(1 - betas)
    n = np.arange(1000)
    t_n = (n + 1) / 1000
    np.testing.assert_allclose(p.alpha(t_n) ** 2, alphas_cumprod, rtol=1e-10)
    np.testing.assert_allclose(p.sigma(t_n) ** 2, 1 - alphas_cumprod, rtol=1e-10)
    np.testing.assert_allclose(p.betas(), betas, rtol=1e-9)
    np.testing.assert_allclose(p.discrete_step(t_n), n, atol=1e-9)
    # DPM-Solver's extension: log α linear in t between knots
    mid = 0.5 * (t_n[10] + t_n[11])
    la = 0.5 * (np.log(alphas_cumprod[10]) + np.log(alphas_cumprod[11])) / 2
    np.testing.assert_allclose(p.log_alpha(mid), la, rtol=1e-12)


def test_float32_stable_near_ends():
    p = VP()
    t = jnp.asarray([1e-6, 1e-4, 1e-3], jnp.float32)
    s = p.sigma(t)
    ref = np.sqrt(-np.expm1(2 * (-0.25 * np.float64(t) ** 2 * 19.9 - 0.05 * np.float64(t))))
    np.testing.assert_allclose(s, ref, rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(p.lam(t))))
    assert np.all(np.isfinite(np.asarray(VPCosine().lam(jnp.float32(0.9946)))))


def test_prior_and_perturb():
    p = VE()
    x = jnp.asarray([[0.3, -2.0], [10.0, 4.0]])
    ref = stats.norm(0, 50.0).logpdf(np.asarray(x)).sum(-1)
    np.testing.assert_allclose(p.prior_logp(x), ref, rtol=1e-5)
    vp = VP()
    x0 = jnp.ones((20000, 2))
    xt, eps = vp.perturb(jax.random.key(0), x0, jnp.full((20000,), 0.5))
    np.testing.assert_allclose(xt, vp.alpha(0.5) * x0 + vp.sigma(0.5) * eps, rtol=1e-6)
    assert abs(float(jnp.std(xt)) - float(vp.sigma(0.5))) < 0.02
    assert vp.prior_sample(jax.random.key(1), (5, 3)).shape == (5, 3)


def test_bad_construction_and_names():
    with pytest.raises(ValueError, match="valid choices"):
        get_process("ddpm")
    with pytest.raises(ValueError):
        VP(beta_min=2.0, beta_max=1.0)
    with pytest.raises(ValueError):
        VE(sigma_min=-1.0)
    with pytest.raises(ValueError):
        Discrete([0.1, 1.5])
    with pytest.raises(ValueError, match="domain"):
        VP().check_times(jnp.asarray([1.5, 0.5]))
    assert isinstance(get_process("edm", sigma_max=10.0), EDM)
