"""A time- (and optionally class-) conditioned MLP, and :func:`split_apply`, the bridge from an
NNX module to the pure ``apply_fn(params, x, t, cond)`` that :class:`jdiff.Model` holds."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jdiff.nn.embeddings import FourierEmbedding, SinusoidalEmbedding

__all__ = ["MLP", "NNXApply", "split_apply"]

_TIME_EMBEDS = ("sinusoidal", "fourier")


class MLP(nnx.Module):
    r"""Residual-free MLP denoiser for vector data, conditioned on time and optionally a class.

    Architecture: the time embedding (:class:`SinusoidalEmbedding` or :class:`FourierEmbedding`
    of ``t`` as given) goes through a 2-layer MLP to a conditioning vector $c$ of size
    ``embed_dim``; with ``num_classes`` a learned class embedding is **added** to $c$. Each hidden
    layer then computes $h \leftarrow \mathrm{act}(W h + b + U c)$, i.e. the conditioning is
    *added* to the pre-activation of every hidden layer (not concatenated to the input). A final
    linear layer maps back to ``data_dim``.

    Class conditioning uses ``nnx.Embed`` with ``num_classes + 1`` rows: row ``num_classes`` is the
    **null label** $\varnothing$ (the unconditional model of classifier-free guidance, Ho & Salimans
    2022); ``cond=None`` means the null label for every example.

    ``dtype`` is the compute dtype (e.g. ``jnp.bfloat16``) and ``param_dtype`` the storage dtype
    of the parameters; the output is cast back to ``x.dtype``.

    Shapes: ``x[B, data_dim]``, ``t[B]`` or scalar, ``cond`` ``None`` or int ``[B]`` in
    ``[0, num_classes]`` -> ``[B, data_dim]``.
    """

    def __init__(
        self,
        data_dim: int,
        hidden: Sequence[int] = (256, 256, 256),
        time_embed: str = "sinusoidal",
        embed_dim: int = 64,
        num_classes: int | None = None,
        activation: Callable[[jax.Array], jax.Array] = nnx.silu,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        *,
        rngs: nnx.Rngs,
    ):
        if time_embed not in _TIME_EMBEDS:
            raise ValueError(f"time_embed must be one of {_TIME_EMBEDS}, got {time_embed!r}")
        if not hidden:
            raise ValueError("hidden must contain at least one layer width")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer or None, got {num_classes}")
        self.data_dim = data_dim
        self.num_classes = num_classes
        self.activation = activation
        lin = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        if time_embed == "sinusoidal":
            self.time_embed = SinusoidalEmbedding(embed_dim)
        else:
            self.time_embed = FourierEmbedding(embed_dim, rngs=rngs)
        self.time_mlp1 = nnx.Linear(embed_dim, embed_dim, **lin)
        self.time_mlp2 = nnx.Linear(embed_dim, embed_dim, **lin)
        self.class_embed = (
            None if num_classes is None else nnx.Embed(num_classes + 1, embed_dim, **lin)
        )
        widths = [data_dim, *hidden]
        self.layers = nnx.List(
            [nnx.Linear(a, b, **lin) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.cond_proj = nnx.List([nnx.Linear(embed_dim, b, use_bias=False, **lin) for b in hidden])
        self.out = nnx.Linear(hidden[-1], data_dim, **lin)

    @property
    def null_label(self) -> int | None:
        """Index of the null (unconditional) label, ``num_classes``; None if unconditional."""
        return self.num_classes

    def __call__(self, x: jax.Array, t: jax.Array, cond: jax.Array | None = None) -> jax.Array:
        if x.ndim != 2 or x.shape[-1] != self.data_dim:
            raise ValueError(f"x must have shape [B, {self.data_dim}], got {x.shape}")
        batch = x.shape[0]
        t = jnp.asarray(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, batch)):
            raise ValueError(f"t must be a scalar or shape [{batch}], got {t.shape}")
        t = jnp.broadcast_to(t, (batch,))
        c = self.time_mlp2(self.activation(self.time_mlp1(self.time_embed(t))))
        if self.class_embed is not None:
            if cond is None:
                cond = jnp.full((batch,), self.num_classes, jnp.int32)
            c = c + self.class_embed(jnp.broadcast_to(jnp.asarray(cond), (batch,)))
        elif cond is not None:
            raise ValueError("cond was given but the MLP was built with num_classes=None")
        h = x
        for layer, proj in zip(self.layers, self.cond_proj, strict=True):
            h = self.activation(layer(h) + proj(c))
        return self.out(h).astype(x.dtype)


def _digest(state: nnx.State) -> str:
    """SHA-256 of a (numpy) state's paths, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        arr = np.asarray(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class NNXApply:
    """Pure apply function of an NNX module: ``apply(params, x, t, cond=None) -> [B, ...]``.

    Holds the module's ``GraphDef`` and its non-trainable variables (``buffers``, e.g. the fixed
    frequencies of :class:`FourierEmbedding`, kept as host numpy constants). Inside, it merges
    ``graphdef`` with ``params`` and ``buffers`` and calls the module. Hashing and equality go by
    the graphdef and a digest of the buffers, so it is a valid static (``jit``-hashable) field and
    two splits of equal modules compare equal; new params *values* never retrace.

    Buffers are compile-time constants: this suits fixed buffers only (not running statistics).
    """

    graphdef: Any
    buffers: nnx.State
    _key: str = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_key", _digest(self.buffers))

    def __hash__(self) -> int:
        return hash((self.graphdef, self._key))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NNXApply):
            return NotImplemented
        return self._key == other._key and self.graphdef == other.graphdef

    def __call__(
        self, params: nnx.State, x: jax.Array, t: jax.Array, cond: jax.Array | None = None
    ) -> jax.Array:
        module = nnx.merge(self.graphdef, params, self.buffers)
        return module(x, t, cond)


def split_apply(module: nnx.Module) -> tuple[NNXApply, nnx.State]:
    """Split an NNX network into a pure apply function and its trainable params.

    Built on ``nnx.split(module, nnx.Param, ...)``: the ``nnx.Param`` state becomes ``params`` (a
    pytree that travels into ``jit`` as an argument and is what optimizers and checkpoints see);
    everything else becomes constant buffers of the returned :class:`NNXApply`.

    Returns ``(apply_fn, params)`` with ``apply_fn(params, x, t, cond=None)`` equal to
    ``module(x, t, cond)``; use as ``jdiff.Model(apply_fn, params, process, prediction)``.
    """
    graphdef, params, buffers = nnx.split(module, nnx.Param, ...)
    buffers = jax.tree.map(np.asarray, jax.device_get(buffers))
    return NNXApply(graphdef, buffers), params
