"""2-D toy datasets generated in code (no downloads), each ``sample(key, n) -> [n, 2]`` float32.

All are roughly standardized (mean about 0, per-axis standard deviation about 1) and jittable
with static ``n``. ``gaussian_mixture_2d()`` returns fixed, known mixture parameters so that
experiments can compare against an exact density (``jdiff.analytic.GaussianMixture`` and
:func:`jdiff.metrics.gaussian_mixture_nll`).

Look-up by name: ``DATASETS[name]`` or :func:`get_dataset` (a ``ValueError`` naming the valid
choices for an unknown name).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DATASETS",
    "checkerboard",
    "eight_gaussians",
    "gaussian_mixture",
    "gaussian_mixture_2d",
    "get_dataset",
    "sample_gaussian_mixture",
    "swiss_roll",
    "two_moons",
]

Sampler = Callable[[jax.Array, int], jax.Array]


def two_moons(key: jax.Array, n: int, noise: float = 0.1) -> jax.Array:
    r"""Two interleaved half circles (as scikit-learn's ``make_moons``), each point on either moon
    with probability 1/2, plus isotropic Gaussian noise of std ``noise``; then centred and scaled
    per axis by the (measured) moments. Returns ``[n, 2]`` float32."""
    k_moon, k_theta, k_noise = jax.random.split(key, 3)
    upper = jax.random.bernoulli(k_moon, 0.5, (n,))
    theta = jnp.pi * jax.random.uniform(k_theta, (n,))
    x = jnp.where(upper, jnp.cos(theta), 1.0 - jnp.cos(theta))
    y = jnp.where(upper, jnp.sin(theta), 0.5 - jnp.sin(theta))
    pts = jnp.stack([x, y], -1) + noise * jax.random.normal(k_noise, (n, 2))
    return ((pts - jnp.array([0.5, 0.25])) / jnp.array([0.87, 0.50])).astype(jnp.float32)


def swiss_roll(key: jax.Array, n: int, noise: float = 0.5) -> jax.Array:
    r"""2-D Swiss roll: $t = \tfrac{3\pi}{2}(1 + 2u)$, $u \sim U[0,1]$, point
    $(t\cos t, t\sin t)$ plus Gaussian noise of std ``noise`` (in raw units), then centred and
    divided by 6.8. Returns ``[n, 2]`` float32."""
    k_t, k_noise = jax.random.split(key)
    t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,)))
    pts = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], -1)
    pts = pts + noise * jax.random.normal(k_noise, (n, 2))
    return ((pts - jnp.array([2.0, 0.2])) / 6.8).astype(jnp.float32)


def checkerboard(key: jax.Array, n: int) -> jax.Array:
    r"""Uniform density on the 8 black squares of a 4×4 checkerboard over $[-2, 2]^2$
    (as in FFJORD, Grathwohl et al. 2019), divided by $\sqrt{4/3}$ (the per-axis std).
    Returns ``[n, 2]`` float32."""
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,), minval=-2.0, maxval=2.0)
    x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.bernoulli(k3, 0.5, (n,))
    x2 = x2 + jnp.floor(x1) % 2
    return (jnp.stack([x1, x2], -1) / math.sqrt(4.0 / 3.0)).astype(jnp.float32)


def eight_gaussians(key: jax.Array, n: int, std: float = 0.1) -> jax.Array:
    r"""Equal-weight mixture of 8 isotropic Gaussians of std ``std`` centred on a circle at angles
    $k\pi/4$, with radius $r = \sqrt{2(1 - \mathrm{std}^2)}$ so that each coordinate has
    variance exactly 1. Returns ``[n, 2]`` float32."""
    k_c, k_noise = jax.random.split(key)
    radius = math.sqrt(2.0 * (1.0 - std**2))
    angle = jax.random.randint(k_c, (n,), 0, 8) * (jnp.pi / 4)
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    return (centres + std * jax.random.normal(k_noise, (n, 2))).astype(jnp.float32)


def gaussian_mixture_2d() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Fixed parameters of a 3-component, anisotropic 2-D Gaussian mixture (roughly
    standardized) with a known exact density.

    Returns ``(weights[K], means[K, 2], covs[K, 2, 2])`` as float32 numpy arrays, $K = 3$:
    $p(x) = \sum_k w_k \mathcal N(x; \mu_k, \Sigma_k)$.
    """
    weights = np.array([0.5, 0.3, 0.2], np.float32)
    means = np.array([[-1.0, -0.5], [1.0, 0.0], [0.0, 1.5]], np.float32)
    covs = np.array(
        [
            [[0.30, 0.15], [0.15, 0.20]],
            [[0.10, -0.05], [-0.05, 0.40]],
            [[0.05, 0.00], [0.00, 0.05]],
        ],
        np.float32,
    )
    return weights, means, covs


def sample_gaussian_mixture(
    key: jax.Array, n: int, weights: jax.Array, means: jax.Array, covs: jax.Array
) -> jax.Array:
    r"""Draw ``n`` samples from $\sum_k w_k \mathcal N(\mu_k, \Sigma_k)$: a component per point
    from ``weights[K]``, then $\mu_k + L_k z$ with $L_k$ the Cholesky factor of
    ``covs[K, D, D]``. Returns ``[n, D]``."""
    k_c, k_z = jax.random.split(key)
    weights, means, covs = (jnp.asarray(a) for a in (weights, means, covs))
    comp = jax.random.choice(k_c, weights.shape[0], (n,), p=weights)
    chol = jnp.linalg.cholesky(covs)
    z = jax.random.normal(k_z, (n, means.shape[-1]), means.dtype)
    return means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)


def gaussian_mixture(key: jax.Array, n: int) -> jax.Array:
    """Samples ``[n, 2]`` float32 from the fixed mixture of :func:`gaussian_mixture_2d`."""
    return sample_gaussian_mixture(key, n, *gaussian_mixture_2d()).astype(jnp.float32)


DATASETS: dict[str, Sampler] = {
    "two_moons": two_moons,
    "swiss_roll": swiss_roll,
    "checkerboard": checkerboard,
    "eight_gaussians": eight_gaussians,
    "gaussian_mixture": gaussian_mixture,
}


def get_dataset(name: str) -> Sampler:
    """The sampler ``sample(key, n) -> [n, 2]`` registered under ``name`` in :data:`DATASETS`.

    Raises ``ValueError`` naming the valid choices if ``name`` is unknown.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; valid choices: {', '.join(sorted(DATASETS))}"
        ) from None
