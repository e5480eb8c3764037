"""The training state pytree."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["TrainState", "init_train_state"]


class TrainState(NamedTuple):
    """Everything a training run needs to continue exactly; a pytree of arrays only.

    Attributes:
        params: model parameters (any pytree, e.g. an ``nnx.State`` from ``jdiff.nn.split_apply``).
        ema_params: exponential moving average of ``params`` (same structure).
        opt_state: the optax optimizer state.
        step: int32 scalar, number of steps taken (skipped ones included). It is also the **data
            position**: the batch of step ``i`` is ``batch_fn(data_key, i)``.
        key: uint32 raw key data (``jax.random.key_data``) of the run's training key; the key of
            step ``i`` is ``fold_in(key, i)``. Stored raw so checkpoints hold plain arrays.
        skipped: int32 scalar, number of *consecutive* non-finite (skipped) steps so far.
        total_skipped: int32 scalar, total number of skipped steps in the run.
    """

    params: Any
    ema_params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    skipped: jax.Array
    total_skipped: jax.Array


def _raw_key(key: jax.Array) -> jax.Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def init_train_state(
    params: Any, optimizer: optax.GradientTransformation, key: jax.Array
) -> TrainState:
    """A fresh :class:`TrainState` at step 0: EMA = params, ``optimizer.init(params)``.

    ``key`` may be a typed key (``jax.random.key``) or raw key data (``jax.random.PRNGKey``).
    Every leaf is a fresh buffer (copied), so the state can be donated without invalidating
    ``params`` or aliasing two leaves.
    """
    params = jax.tree.map(jnp.asarray, params)
    state = TrainState(
        params=params,
        ema_params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=_raw_key(key),
        skipped=jnp.zeros((), jnp.int32),
        total_skipped=jnp.zeros((), jnp.int32),
    )
    return jax.tree.map(jnp.copy, state)
