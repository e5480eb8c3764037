"""Embeddings of a continuous scalar time per example.

Both embeddings take ``t[B]`` (or a scalar, broadcast by the caller) and return ``[B, dim]``.
The time is embedded *as given*: pass the process time $t$ (e.g. in $[0, 1]$ for VP / flow
matching, up to 80 for EDM) or, if preferred, a preconditioned input such as EDM's
$c_\\text{noise} = \\tfrac14 \\log\\sigma$.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["FourierEmbedding", "FourierFrequencies", "SinusoidalEmbedding"]


def _check_dim(dim: int) -> None:
    if dim < 2 or dim % 2:
        raise ValueError(f"embedding dim must be an even integer >= 2, got {dim}")


class SinusoidalEmbedding(nnx.Module):
    r"""Transformer-style sinusoidal embedding of a scalar time (Vaswani et al. 2017; used for
    diffusion time by Ho et al. 2020).

    $$\mathrm{emb}(t) = [\sin(\omega_1 t), \dots, \sin(\omega_{d/2} t),
    \cos(\omega_1 t), \dots, \cos(\omega_{d/2} t)]$$

    with angular frequencies $\omega_k$ geometrically spaced over ``[min_freq, max_freq]``
    (default $[10^{-3}, 10^{3}]$), so times from about $10^{-3}$ (fine resolution near the data
    end) to about $10^{3}$ (EDM's $\sigma_\max = 80$) are all resolved without rescaling.
    There are no parameters. Computed in float32 (sines of large arguments are meaningless in
    bf16), then cast to ``dtype`` if given.

    Shapes: ``t[B]`` -> ``[B, dim]``.
    """

    def __init__(
        self,
        dim: int,
        *,
        min_freq: float = 1e-3,
        max_freq: float = 1e3,
        dtype: jnp.dtype | None = None,
    ):
        _check_dim(dim)
        if not 0 < min_freq < max_freq:
            raise ValueError(f"need 0 < min_freq < max_freq, got {min_freq}, {max_freq}")
        self.dim = dim
        self.min_freq = min_freq
        self.max_freq = max_freq
        self.dtype = dtype

    def __call__(self, t: jax.Array) -> jax.Array:
        half = self.dim // 2
        freqs = jnp.exp(
            jnp.linspace(math.log(self.min_freq), math.log(self.max_freq), half, dtype=jnp.float32)
        )
        args = jnp.asarray(t, jnp.float32)[..., None] * freqs
        emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
        return emb if self.dtype is None else emb.astype(self.dtype)


class FourierFrequencies(nnx.Variable):
    """Fixed random frequencies of :class:`FourierEmbedding`.

    A ``nnx.Variable`` that is *not* an ``nnx.Param``: ``nnx.split(module, nnx.Param, ...)``
    (and hence :func:`jdiff.nn.split_apply`) leaves it out of the trainable params, so no
    optimizer ever updates it.
    """


class FourierEmbedding(nnx.Module):
    r"""Random Gaussian Fourier features of a scalar time (Tancik et al. 2020; used for noise
    levels by Song et al. 2021, "Score-Based Generative Modeling through SDEs").

    $$\mathrm{emb}(t) = [\sin(2\pi W t), \cos(2\pi W t)],\qquad W \sim \mathcal N(0, s^2 I_{d/2}),$$

    with ``scale`` $= s$ (default 16, as in Song et al.) and $W$ drawn once at construction and
    stored as a non-trainable :class:`FourierFrequencies` variable. Song et al. embed
    $\log\sigma$ rather than $\sigma$; for large time ranges pass a log-scaled input
    (e.g. EDM's $c_\text{noise}$) or lower ``scale``.

    Shapes: ``t[B]`` -> ``[B, dim]``.
    """

    def __init__(
        self, dim: int, *, scale: float = 16.0, dtype: jnp.dtype | None = None, rngs: nnx.Rngs
    ):
        _check_dim(dim)
        self.dim = dim
        self.dtype = dtype
        self.freqs = FourierFrequencies(
            scale * jax.random.normal(rngs.params(), (dim // 2,), jnp.float32)
        )

    def __call__(self, t: jax.Array) -> jax.Array:
        args = 2 * jnp.pi * jnp.asarray(t, jnp.float32)[..., None] * self.freqs[...]
        emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
        return emb if self.dtype is None else emb.astype(self.dtype)
