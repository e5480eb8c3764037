"""Tests for jdiff.data."""

import jax
import numpy as np
import pytest

from jdiff import data


@pytest.mark.parametrize("name", sorted(data.DATASETS))
def test_dataset_shape_determinism_standardized(name):
    sample = data.get_dataset(name)
    key = jax.random.key(0)
    x = sample(key, 4000)
    assert x.shape == (4000, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x, sample(key, 4000))
    assert not np.array_equal(x, sample(jax.random.key(1), 4000))
    assert np.all(np.abs(np.mean(x, 0)) < 0.3)
    assert np.all((np.std(x, 0) > 0.5) & (np.std(x, 0) < 1.5))


def test_unknown_name():
    with pytest.raises(ValueError, match="two_moons"):
        data.get_dataset("moons3d")


def test_gaussian_mixture_params_and_sampler():
    w, mu, cov = data.gaussian_mixture_2d()
    assert w.shape == (3,) and mu.shape == (3, 2) and cov.shape == (3, 2, 2)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    x = data.sample_gaussian_mixture(jax.random.key(0), 20000, w, mu, cov)
    np.testing.assert_allclose(x.mean(0), (w[:, None] * mu).sum(0), atol=0.03)
