"""Linear measurement operators for inverse problems $y = A x_0 + \\sigma_y z$.

Each operator acts per example on `x[B, ...]` and provides $A$ (`apply`), $A^\\top$ (`adjoint`),
the pseudo-inverse $A^\\dagger = A^\\top (A A^\\top)^{-1}$ (`pinv`), and the diagonal $g$ of
$A A^\\top$ in measurement space (`gram_diag`; every operator here has a diagonal Gram matrix), so
that $(a I + b A A^\\top)^{+} v$ is the elementwise `gram_solve`.

| operator | $A x$ | $A A^\\top$ | $A^\\dagger$ |
|---|---|---|---|
| `Denoising()` | $x$ | $I$ | $I$ |
| `Inpainting(mask)` | $m \\odot x$ (same shape as x; zeros where unobserved) | $\\mathrm{diag}(m)$ | $m \\odot y$ |
| `Downsample(factor, ndim)` | mean over `factor`-blocks along the last `ndim` axes | $f^{-k} I$ | nearest-neighbour upsampling ($f^k A^\\top$) |

Operators are `equinox.Module`s: masks are array leaves (new masks do not recompile).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

__all__ = ["LinearOperator", "Denoising", "Inpainting", "Downsample"]


class LinearOperator(eqx.Module):
    """A linear measurement operator A acting per example on `x[B, ...]`."""

    @abc.abstractmethod
    def apply(self, x: Array) -> Array:
        """$A x$: `x[B, ...]` → `y[B, ...]`."""

    @abc.abstractmethod
    def adjoint(self, y: Array) -> Array:
        """$A^\\top y$: `y[B, ...]` → `[B, ...]` shaped like x."""

    @abc.abstractmethod
    def gram_diag(self, y: Array) -> Array:
        """Diagonal of $A A^\\top$, broadcastable to `y[B, ...]` (0 on unobserved entries)."""

    def pinv(self, y: Array) -> Array:
        """$A^\\dagger y = A^\\top (A A^\\top)^{+} y$, shaped like x."""
        return self.adjoint(self.gram_solve(y, 0.0, 1.0))

    def gram_solve(self, v: Array, a: ArrayLike, b: ArrayLike) -> Array:
        """$(a I + b A A^\\top)^{+} v$ on the range of A (0 on unobserved entries).

        `a`, `b` are scalars or `[B]`; `v[B, ...]` is in measurement space.
        """
        gd = jnp.broadcast_to(self.gram_diag(v), v.shape)
        a = _per_example(a, v)
        b = _per_example(b, v)
        den = a + b * gd
        ok = gd > 0
        return jnp.where(ok, v / jnp.where(ok, den, 1.0), 0.0)

    def observe(self, key: PRNGKeyArray, x: Array, sigma_y: ArrayLike) -> Array:
        """A noisy measurement $y = A x + \\sigma_y z$ restricted to the range of A, `[B, ...]`."""
        y = self.apply(x)
        z = jax.random.normal(key, y.shape, y.dtype)
        ok = jnp.broadcast_to(self.gram_diag(y), y.shape) > 0
        return y + jnp.where(ok, jnp.asarray(sigma_y, y.dtype) * z, 0.0)

    def matrix(self, shape: tuple[int, ...], dtype=None) -> Array:
        """A as a dense matrix `[M, D]` for one example of shape `shape` (D = prod(shape))."""
        d = math.prod(shape)
        eye = jnp.eye(d, dtype=dtype or jnp.result_type(float)).reshape((d, *shape))
        cols = self.apply(eye).reshape(d, -1)  # row i = A e_i
        return cols.T


def _per_example(a: ArrayLike, v: Array) -> Array:
    a = jnp.asarray(a, v.dtype)
    if a.ndim == 0:
        return a
    return a.reshape(a.shape + (1,) * (v.ndim - 1))


class Denoising(LinearOperator):
    """$A = I$: observe $y = x_0 + \\sigma_y z$."""

    def apply(self, x: Array) -> Array:
        return x

    def adjoint(self, y: Array) -> Array:
        return y

    def gram_diag(self, y: Array) -> Array:
        return jnp.ones((), y.dtype)


class Inpainting(LinearOperator):
    """$A = \\mathrm{diag}(m)$ with a 0/1 mask m shaped like one example (or broadcastable to x).

    Measurements keep x's shape; unobserved entries are 0 (and carry no noise in `observe`).

    Args:
        mask: array of 0/1 (or bool) values, shaped like one example `[...]` or like `x[B, ...]`.
    """

    mask: Array

    def __init__(self, mask: ArrayLike):
        mask = jnp.asarray(mask)
        if not isinstance(mask, jax.core.Tracer):
            import numpy as np

            mn = np.asarray(mask, dtype=np.float64)
            if not np.all((mn == 0) | (mn == 1)):
                raise ValueError("mask must contain only 0/1 (or boolean) values")
        self.mask = mask.astype(jnp.result_type(float)) if mask.dtype == bool else mask

    def _m(self, x: Array) -> Array:
        return self.mask.astype(x.dtype)

    def apply(self, x: Array) -> Array:
        return self._m(x) * x

    def adjoint(self, y: Array) -> Array:
        return self._m(y) * y

    def gram_diag(self, y: Array) -> Array:
        return self._m(y)


class Downsample(LinearOperator):
    """Average pooling by `factor` along the last `ndim` axes (`ndim=1`: vectors `[B, D]`;
    `ndim=2`: images `[B, H, W]`; put channels first, `[B, C, H, W]`, for multi-channel images).

    $A A^\\top = f^{-k} I$ (k = `ndim`), $A^\\dagger = f^k A^\\top$ = nearest-neighbour upsampling.

    Args:
        factor: the block size f (each pooled axis must be divisible by it).
        ndim: number of trailing axes to pool (1 or 2).
    """

    factor: int = eqx.field(static=True)
    ndim: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if int(self.factor) < 1:
            raise ValueError(f"factor must be a positive integer; got {self.factor}")
        if self.ndim not in (1, 2):
            raise ValueError(f"ndim must be 1 (vectors) or 2 (images); got {self.ndim}")

    def _check(self, x: Array) -> None:
        if x.ndim < self.ndim + 1:
            raise ValueError(
                f"Downsample(ndim={self.ndim}) needs x[B, ...] with >= {self.ndim} "
                f"non-batch axes; got {x.shape}"
            )
        for n in x.shape[x.ndim - self.ndim :]:
            if n % self.factor:
                raise ValueError(f"axis length {n} is not divisible by factor {self.factor}")

    def apply(self, x: Array) -> Array:
        self._check(x)
        f = self.factor
        for ax in range(x.ndim - self.ndim, x.ndim):
            shape = x.shape[:ax] + (x.shape[ax] // f, f) + x.shape[ax + 1 :]
            x = jnp.mean(x.reshape(shape), axis=ax + 1)
        return x

    def adjoint(self, y: Array) -> Array:
        f = self.factor
        for ax in range(y.ndim - self.ndim, y.ndim):
            y = jnp.repeat(y, f, axis=ax) / f
        return y

    def gram_diag(self, y: Array) -> Array:
        return jnp.asarray(float(self.factor) ** (-self.ndim), y.dtype)
