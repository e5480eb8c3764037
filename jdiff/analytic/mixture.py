"""Gaussian-mixture data: exact diffused marginals, scores, denoisers and class posteriors.

For $p_0 = \\sum_k \\pi_k \\mathcal N(\\mu_k, \\Sigma_k)$ and any process $(\\alpha_t, \\sigma_t)$
(monograph §3.0):

$$p_t(x) = \\sum_k \\pi_k\\,\\mathcal N(x;\\ \\alpha\\mu_k,\\ C_k), \\qquad C_k = \\alpha^2\\Sigma_k + \\sigma^2 I,$$

$$w_k(x) = p_t(c = k \\mid x) = \\frac{\\pi_k \\mathcal N(x; \\alpha\\mu_k, C_k)}{\\sum_j \\pi_j
\\mathcal N(x; \\alpha\\mu_j, C_j)},$$

$$\\nabla\\log p_t(x) = -\\sum_k w_k\\,C_k^{-1}(x - \\alpha\\mu_k), \\quad
\\hat x_0 = \\sum_k w_k\\,[\\mu_k + \\alpha\\Sigma_k C_k^{-1}(x - \\alpha\\mu_k)], \\quad
\\hat\\varepsilon = \\sigma\\sum_k w_k\\,C_k^{-1}(x - \\alpha\\mu_k).$$

Each $\\Sigma_k = U_k\\,\\mathrm{diag}(\\lambda_k)\\,U_k^\\top$ is diagonalised once at construction,
so $C_k^{-1} = U_k\\,\\mathrm{diag}(1/(\\alpha^2\\lambda_k + \\sigma^2))\\,U_k^\\top$ costs O(D²) per
example and time: no per-time factorisation. Class-conditional predictions use the component
alone ($w = $ one-hot); the **null label is K** (the number of components) and means the
unconditional mixture — the convention classifier-free guidance tests use.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from jdiff.analytic.base import (
    AbstractOracle,
    _as_float_array,
    _check_kind,
    _coeffs,
    _ExactApply,
    _flatten,
    _is_concrete,
    _normalise_weights,
)
from jdiff.model import Model
from jdiff.process.base import AbstractProcess

__all__ = ["GaussianMixture"]

_LOG_2PI = math.log(2 * math.pi)


def _check_covs(covs: Array, k: int, d: int) -> Array:
    """Validate `covs[K, D, D]` (finite, symmetric, positive definite); return it symmetrised."""
    if covs.shape != (k, d, d):
        raise ValueError(f"covs must have shape [K, D, D] = [{k}, {d}, {d}]; got {covs.shape}")
    if _is_concrete(covs):
        c = np.asarray(covs, dtype=np.float64)
        if not np.all(np.isfinite(c)):
            raise ValueError("covs must be finite")
        scale = max(float(np.max(np.abs(c))), 1e-30)
        asym = np.max(np.abs(c - np.swapaxes(c, -1, -2)))
        if asym > 1e-5 * scale:
            raise ValueError(f"covs must be symmetric; max |Σ − Σᵀ| = {asym:.3g}")
        ev = np.linalg.eigvalsh(0.5 * (c + np.swapaxes(c, -1, -2)))
        bad = np.nonzero(ev.min(axis=-1) <= 0)[0]
        if bad.size:
            raise ValueError(
                f"covs must be positive definite; component(s) {bad.tolist()} have smallest "
                f"eigenvalue(s) {ev.min(axis=-1)[bad].tolist()}"
            )
    return 0.5 * (covs + jnp.swapaxes(covs, -1, -2))


def _component_terms(means, evals, evecs, x, a, s):
    """Per-component closed forms at flat `x[B, D]`, `alpha[B]`, `sigma[B]`.

    Returns `(log_n[B, K], x0[B, K, D], cinv_y[B, K, D])` with
    `log_n` = log N(x; αμ_k, C_k), `x0` = μ_k + αΣ_k C_k⁻¹(x − αμ_k), `cinv_y` = C_k⁻¹(x − αμ_k).
    """
    a3 = a[:, None, None]
    y = x[:, None, :] - a3 * means[None]  # [B, K, D]
    z = jnp.einsum("kdi,bkd->bki", evecs, y)  # eigen-coordinates of y
    r = a3**2 * evals[None] + (s**2)[:, None, None]  # eigenvalues of C_k, [B, K, D]
    q = z / r
    d = x.shape[-1]
    log_n = -0.5 * jnp.sum(z * q, -1) - 0.5 * jnp.sum(jnp.log(r), -1) - 0.5 * d * _LOG_2PI
    cinv_y = jnp.einsum("kdi,bki->bkd", evecs, q)
    x0 = means[None] + a3 * jnp.einsum("kdi,bki->bkd", evecs, evals[None] * q)
    return log_n, x0, cinv_y


class GaussianMixture(AbstractOracle):
    """Gaussian mixture $p_0 = \\sum_k \\pi_k\\,\\mathcal N(\\mu_k, \\Sigma_k)$ with exact oracles.

    Args:
        weights: `[K]` mixture weights π (positive, summing to 1 within 1e-4; renormalised).
        means: `[K, D]` component means μ_k.
        covs: `[K, D, D]` component covariances Σ_k (symmetric positive definite).

    Raises:
        ValueError: on bad shapes, non-positive weights, weights not summing to 1, or
            covariances that are not symmetric positive definite (values are checked when
            concrete; construction under `jit` checks shapes only).

    Attributes:
        weights, means, covs: as given (weights normalised, covs symmetrised).
        eigvals: `[K, D]` eigenvalues λ of each Σ_k; eigvecs: `[K, D, D]` eigenvectors (columns).
            Derived at construction: build a new mixture rather than editing `covs` in place.

    Labels: class-conditional methods take `labels` (int, scalar or `[B]`) in `{0, ..., K}`;
    label `k < K` selects component k ($p_t(x \\mid c = k)$), and the **null label `K`**
    (`self.null_label`) selects the unconditional mixture $p_t(x)$.

    All arrays take the dtype they are given (build under `jax.enable_x64(True)` with float64
    inputs for float64 oracles).
    """

    weights: Array
    means: Array
    covs: Array
    eigvals: Array
    eigvecs: Array

    def __init__(self, weights: ArrayLike, means: ArrayLike, covs: ArrayLike):
        means = _as_float_array(means, "means")
        if means.ndim != 2 or means.shape[0] < 1:
            raise ValueError(f"means must have shape [K, D] with K >= 1; got {means.shape}")
        k, d = means.shape
        if _is_concrete(means) and not np.all(np.isfinite(np.asarray(means))):
            raise ValueError("means must be finite")
        covs = _check_covs(_as_float_array(covs, "covs"), k, d)
        self.weights = _normalise_weights(weights, k, "component").astype(means.dtype)
        self.means = means
        self.covs = covs
        evals, evecs = jnp.linalg.eigh(covs)
        self.eigvals = jnp.maximum(evals, jnp.finfo(evals.dtype).tiny)
        self.eigvecs = evecs

    # --- basic properties ---------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Data dimension D."""
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        """Number of components K."""
        return self.means.shape[0]

    @property
    def null_label(self) -> int:
        """The label meaning "no class" (the unconditional mixture): K."""
        return self.means.shape[0]

    def component(self, k: int) -> GaussianMixture:
        """Component `k` (a static int) as a one-component mixture."""
        if not 0 <= k < self.num_components:
            raise ValueError(f"component index must lie in [0, {self.num_components}); got {k}")
        return GaussianMixture(
            jnp.ones((1,), self.weights.dtype), self.means[k : k + 1], self.covs[k : k + 1]
        )

    def mean(self) -> Array:
        """Data mean $\\sum_k \\pi_k\\mu_k$, `[D]`."""
        return self.weights @ self.means

    def covariance(self) -> Array:
        """Data covariance $\\sum_k\\pi_k(\\Sigma_k + \\mu_k\\mu_k^\\top) - \\bar\\mu\\bar\\mu^\\top$, `[D, D]`."""
        m = self.mean()
        second = jnp.einsum("k,kij->ij", self.weights, self.covs) + jnp.einsum(
            "k,ki,kj->ij", self.weights, self.means, self.means
        )
        return second - jnp.outer(m, m)

    # --- densities ----------------------------------------------------------------------------
    def log_prob(self, x: Array) -> Array:
        """Data log-density $\\log p_0(x) = \\operatorname{logsumexp}_k[\\log\\pi_k +
        \\log\\mathcal N(x; \\mu_k, \\Sigma_k)]$ (Cholesky of each Σ_k), `x[B, ...]` → `[B]`."""
        return self._log_prob(_flatten(x, self.dim))

    def _log_prob(self, xf):
        chol = jnp.linalg.cholesky(self.covs)  # [K, D, D]
        y = xf[None, :, :] - self.means[:, None, :]  # [K, B, D]
        z = jax.vmap(lambda l_, y_: solve_triangular(l_, y_.T, lower=True).T)(chol, y)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)  # [K]
        log_n = -0.5 * jnp.sum(z**2, -1) - 0.5 * logdet[:, None] - 0.5 * self.dim * _LOG_2PI
        return jax.nn.logsumexp(jnp.log(self.weights)[:, None] + log_n, axis=0)

    def _prepare_labels(self, labels: ArrayLike | None, batch: int) -> Array | None:
        """Check labels (ints in [0, K], scalar or `[B]`) and broadcast them to `[B]`."""
        if labels is None:
            return None
        labels = jnp.asarray(labels)
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(f"labels must be integers in [0, K] (K = null); got {labels.dtype}")
        if not (labels.ndim == 0 or labels.shape == (batch,)):
            raise ValueError(f"labels must be a scalar or have shape [B] = [{batch}]")
        k = self.num_components
        if _is_concrete(labels):
            ln = np.asarray(labels)
            if np.any((ln < 0) | (ln > k)):
                raise ValueError(f"labels must lie in [0, {k}] ({k} = null label); got {ln}")
        else:
            labels = eqx.error_if(
                labels, (labels < 0) | (labels > k), "labels must lie in [0, K] (K = null label)"
            )
        return jnp.broadcast_to(labels, (batch,))

    def _log_joint(self, xf: Array, a: Array, s: Array):
        log_n, x0_k, cinv_y = _component_terms(self.means, self.eigvals, self.eigvecs, xf, a, s)
        return jnp.log(self.weights)[None] + log_n, x0_k, cinv_y

    def marginal_log_prob(
        self, x: Array, t: ArrayLike, process: AbstractProcess, labels: ArrayLike | None = None
    ) -> Array:
        """$\\log p_t(x)$ with $p_t = \\sum_k\\pi_k\\mathcal N(\\alpha\\mu_k, \\alpha^2\\Sigma_k +
        \\sigma^2 I)$, `x[B, ...]`, `t` scalar or `[B]` → `[B]`.

        With `labels` (ints, scalar or `[B]`), $\\log p_t(x \\mid c)$: component `c` alone, or
        the mixture for the null label K.
        """
        x, xf, t = self._prepare(x, t, process)
        labels = self._prepare_labels(labels, x.shape[0])
        return self._marginal_log_prob(xf, t, process, labels)

    def _marginal_log_prob(self, xf, t, process, labels):
        a, s = _coeffs(process, t, xf.shape[0])
        log_joint, _, _ = self._log_joint(xf, a, s)
        out = jax.nn.logsumexp(log_joint, axis=-1)
        if labels is None:
            return out
        log_comp = log_joint - jnp.log(self.weights)[None]
        k = self.num_components
        picked = jnp.take_along_axis(log_comp, jnp.minimum(labels, k - 1)[:, None], axis=-1)
        return jnp.where(labels == k, out, picked[:, 0])

    def log_class_posterior(self, x: Array, t: ArrayLike, process: AbstractProcess) -> Array:
        """$\\log w_k(x) = \\log p_t(c = k \\mid x)$ (Bayes' rule), `x[B, ...]` → `[B, K]`."""
        x, xf, t = self._prepare(x, t, process)
        return self._log_class_posterior(xf, t, process)

    def _log_class_posterior(self, xf, t, process):
        a, s = _coeffs(process, t, xf.shape[0])
        return jax.nn.log_softmax(self._log_joint(xf, a, s)[0], axis=-1)

    def class_posterior(self, x: Array, t: ArrayLike, process: AbstractProcess) -> Array:
        """Posterior class probabilities $w_k(x) = p_t(c = k \\mid x)$, `[B, K]` (rows sum to 1)."""
        return jnp.exp(self.log_class_posterior(x, t, process))

    def _x0_eps_score(self, x, a, s, labels):
        log_joint, x0_k, cinv_y = self._log_joint(x, a, s)
        w = jax.nn.softmax(log_joint, axis=-1)  # [B, K]
        if labels is not None:  # already checked and broadcast to [B]
            k = self.num_components
            w = jnp.where((labels == k)[:, None], w, jax.nn.one_hot(labels, k, dtype=w.dtype))
        x0 = jnp.einsum("bk,bkd->bd", w, x0_k)
        m = jnp.einsum("bk,bkd->bd", w, cinv_y)  # Σ_k w_k C_k⁻¹(x − αμ_k)
        return x0, s[:, None] * m, -m

    # --- models -------------------------------------------------------------------------------
    def conditional_model(self, process: AbstractProcess, prediction: str = "eps") -> Model:
        """A class-conditional exact `Model`: `cond` is an int label array `[B]` (or scalar).

        Label `k < K` gives component k's exact prediction; the null label `K`
        (`self.null_label`) and `cond=None` give the unconditional mixture's.
        """
        _check_kind(prediction)
        return Model(_ExactApply(prediction, True), (self, process), process, prediction)

    def component_model(self, k: int, process: AbstractProcess, prediction: str = "eps") -> Model:
        """Exact `Model` of component `k` alone (data $\\mathcal N(\\mu_k, \\Sigma_k)$)."""
        return self.component(k).model(process, prediction)

    # --- sampling -----------------------------------------------------------------------------
    def sample_with_labels(self, key: PRNGKeyArray, n: int) -> tuple[Array, Array]:
        """Draw `n` data samples and their component labels: `(x[n, D], labels[n] int32)`."""
        return self._sample_with_labels(key, int(n))

    def _sample_with_labels(self, key, n):
        k1, k2 = jax.random.split(key)
        labels = jax.random.categorical(k1, jnp.log(self.weights), shape=(n,))
        z = jax.random.normal(k2, (n, self.dim), self.means.dtype)
        root = self.eigvecs[labels] * jnp.sqrt(self.eigvals[labels])[:, None, :]  # U √Λ
        x = self.means[labels] + jnp.einsum("nij,nj->ni", root, z)
        return x, labels.astype(jnp.int32)

    def sample(self, key: PRNGKeyArray, n: int) -> Array:
        """Draw `n` data samples, `[n, D]`."""
        return self.sample_with_labels(key, n)[0]
