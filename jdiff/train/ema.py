"""Exponential moving average of parameters."""

from __future__ import annotations

from typing import Any

import jax

__all__ = ["ema_update"]


def ema_update(ema_params: Any, params: Any, decay: float | jax.Array) -> Any:
    r"""One EMA step, leaf by leaf: $\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta$.

    Polyak averaging as used for diffusion models since Song & Ermon (2020) and Ho et al. (2020).
    ``decay`` $d \in [0, 1]$; $d = 0$ tracks the params exactly. Leaves keep the EMA's dtype.
    """
    return jax.tree.map(
        lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema_params, params
    )
