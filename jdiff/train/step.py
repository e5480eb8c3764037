"""The jitted train step: gradients, optax update, EMA, and a NaN guard (DESIGN §7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jdiff.train.ema import ema_update
from jdiff.train.state import TrainState

__all__ = ["check_skips", "make_train_step"]

LossFn = Callable[[Any, jax.Array, Any], tuple[jax.Array, dict[str, jax.Array]]]


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(pred: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    ema_decay: float = 0.999,
    max_consecutive_skips: int = 10,
    donate: bool = True,
) -> Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]:
    """Build ``step(state, batch) -> (state, metrics)``, jitted, donating ``state`` by default.

    ``loss_fn(params, key, batch) -> (loss scalar, metrics dict of scalars)`` must be pure. The step key is
    ``fold_in(state.key, state.step)``, so randomness depends on (key, step) only.

    **NaN guard.** If the loss or any gradient leaf is non-finite, the new params, optimizer state
    and EMA are discarded with an on-device ``jnp.where`` select (no host round-trip): they are
    bit-identical to the inputs. ``state.step`` still advances (the next step gets a new key and
    the next batch, and the step stays equal to the data position), ``state.skipped`` (consecutive)
    and ``state.total_skipped`` count it; a finite step resets ``skipped`` to 0.
    Once ``skipped >= max_consecutive_skips`` the step is *halted*: it changes nothing, not even
    ``step``, so that the host (:func:`check_skips`, called by ``train`` at every log and
    checkpoint) can raise ``FloatingPointError`` later without ever fetching a value per step.

    ``metrics`` holds the loss function's metrics plus ``loss``, ``grad_norm`` (global L2 norm)
    and ``finite`` (bool: the step was applied). All are device scalars; fetch them sparingly.
    """
    if max_consecutive_skips < 1:
        raise ValueError(f"max_consecutive_skips must be >= 1, got {max_consecutive_skips}")
    if not 0.0 <= ema_decay <= 1.0:
        raise ValueError(f"ema_decay must lie in [0, 1], got {ema_decay}")

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        halted = state.skipped >= max_consecutive_skips
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, key, batch)
        finite = jnp.isfinite(loss) & _all_finite(grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema_params, params, ema_decay)
        apply = finite & ~halted
        bad = (~finite & ~halted).astype(jnp.int32)
        new_state = TrainState(
            params=_select(apply, params, state.params),
            ema_params=_select(apply, ema, state.ema_params),
            opt_state=_select(apply, opt_state, state.opt_state),
            step=jnp.where(halted, state.step, state.step + 1),
            key=state.key,
            skipped=jnp.where(apply, 0, state.skipped + bad),
            total_skipped=state.total_skipped + bad,
        )
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "finite": apply,
        }
        return new_state, metrics

    return jax.jit(step, donate_argnums=(0,) if donate else ())


def check_skips(state: TrainState, max_consecutive_skips: int) -> None:
    """Raise ``FloatingPointError`` if ``state`` has ``max_consecutive_skips`` consecutive
    non-finite steps. Fetches two scalars from the device (a sync point)."""
    skipped, step = (int(v) for v in jax.device_get((state.skipped, state.step)))
    if skipped >= max_consecutive_skips:
        raise FloatingPointError(
            f"training stopped: {skipped} consecutive steps had a non-finite loss or gradient "
            f"(steps {step - skipped} to {step - 1}); params, optimizer state and EMA are those "
            f"from before step {step - skipped} and were never overwritten with NaNs. Lower the "
            "learning rate, clip gradients, or check the data and loss."
        )
