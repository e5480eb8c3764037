"""Tests for jdiff.metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jdiff.metrics import energy_distance, gaussian_mixture_nll, mmd_rbf, sliced_wasserstein

N = 600


def _samples(shift=0.0, d=2, seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (N, d))
    y = jax.random.normal(ky, (N, d)) + jnp.zeros(d).at[0].set(shift)
    return x, y


@pytest.mark.parametrize("metric", [energy_distance, mmd_rbf])
def test_two_sample_same_vs_shifted(metric):
    f = jax.jit(metric)
    same = float(f(*_samples(0.0)))
    shifted = float(f(*_samples(1.0)))
    assert abs(same) < 0.02
    assert shifted > 0.2
    # unequal sizes work
    x, y = _samples(1.0)
    assert float(f(x, y[:450])) > 0.2


def test_energy_distance_gaussian_shift_value():
    # 1-D: E = 2E|X-Y| - 2E|X-X'|, X-Y ~ N(d, 2), X-X' ~ N(0, 2).
    x, y = _samples(1.0, d=1)
    s = np.sqrt(2.0)
    from scipy.stats import norm

    e_abs = s * np.sqrt(2 / np.pi) * np.exp(-0.5 / s**2) + 1.0 * (1 - 2 * norm.cdf(-1.0 / s))
    expected = 2 * e_abs - 2 * s * np.sqrt(2 / np.pi)
    np.testing.assert_allclose(float(energy_distance(x, y)), expected, atol=0.05)


def test_sliced_wasserstein_shift():
    key = jax.random.key(3)
    x, y = _samples(1.5, d=1)
    np.testing.assert_allclose(float(jax.jit(sliced_wasserstein)(key, x, y)), 1.5, atol=0.15)
    assert float(sliced_wasserstein(key, *_samples(0.0, d=2))) < 0.15
    # unequal sizes (quantile interpolation)
    np.testing.assert_allclose(float(sliced_wasserstein(key, x, y[:400])), 1.5, atol=0.15)


def test_gaussian_mixture_nll_one_component():
    rng = np.random.default_rng(0)
    mean = np.array([0.3, -1.0], np.float32)
    cov = np.array([[0.5, 0.2], [0.2, 0.8]], np.float32)
    x = rng.normal(size=(50, 2)).astype(np.float32)
    got = gaussian_mixture_nll(x, np.ones(1), mean[None], cov[None])
    want = -multivariate_normal(mean, cov).logpdf(x).mean()
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_gaussian_mixture_nll_two_components():
    rng = np.random.default_rng(1)
    w = np.array([0.3, 0.7])
    means = np.array([[0.0, 0.0, 1.0], [2.0, -1.0, 0.0]])
    a = rng.normal(size=(2, 3, 3))
    covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(3)
    x = rng.normal(size=(40, 3))
    dens = sum(w[k] * multivariate_normal(means[k], covs[k]).pdf(x) for k in range(2))
    got = jax.jit(gaussian_mixture_nll)(
        jnp.asarray(x, jnp.float32), jnp.asarray(w), jnp.asarray(means), jnp.asarray(covs)
    )
    np.testing.assert_allclose(float(got), -np.log(dens).mean(), rtol=1e-4)


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\[n, D\]"):
        energy_distance(jnp.zeros((5, 2)), jnp.zeros((5, 3)))
