"""A resumable training loop with progress bar, JSON-lines metrics and checkpoints."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jdiff.train.checkpoint import Checkpointer
from jdiff.train.state import TrainState, init_train_state
from jdiff.train.step import LossFn, check_skips, make_train_step

__all__ = ["train"]

BatchFn = Callable[[jax.Array, int], Any]


@jax.jit
def _accumulate(acc: dict, metrics: dict) -> dict:
    """Sum the metrics of applied (finite) steps; count applied and skipped steps."""
    ok = metrics["finite"]
    out = {
        k: acc[k] + jnp.where(ok, v.astype(jnp.float32), 0.0)
        for k, v in metrics.items()
        if k != "finite"
    }
    out["_applied"] = acc["_applied"] + ok.astype(jnp.int32)
    out["_steps"] = acc["_steps"] + 1
    return out


def _zeros_like_metrics(metrics: dict) -> dict:
    acc = {k: jnp.zeros((), jnp.float32) for k in metrics if k != "finite"}
    acc["_applied"] = jnp.zeros((), jnp.int32)
    acc["_steps"] = jnp.zeros((), jnp.int32)
    return acc


def _trim_metrics(path: str, last_step: int) -> None:
    """Drop records past ``last_step`` (left by a run that crashed after its last checkpoint)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        keep = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    with open(path, "w") as f:
        f.writelines(keep)


def train(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    init_params: Any,
    batch_fn: BatchFn,
    *,
    num_steps: int,
    key: jax.Array,
    workdir: str | os.PathLike | None = None,
    ckpt_every: int = 1000,
    log_every: int = 100,
    ema_decay: float = 0.999,
    max_consecutive_skips: int = 10,
    max_to_keep: int = 3,
    progress: bool = True,
) -> TrainState:
    """Train for ``num_steps`` steps (total, counting steps of earlier runs), resuming if possible.

    Args:
        loss_fn: pure ``loss_fn(params, key, batch) -> (loss, metrics)``.
        optimizer: an optax transformation.
        init_params: initial params pytree; also defines the checkpoint structure.
        batch_fn: ``batch_fn(data_key, step) -> batch``, the batch for step ``step``. It must be a
            pure function of its arguments so a resumed run sees the same data (the data
            position is the step). JAX code here dispatches asynchronously, overlapping the
            previous step; ``jax.jit`` it for speed.
        num_steps: total steps; a run resumed at step ``k`` runs ``num_steps - k`` more.
        key: the run's key (typed or raw); split into a data key and the state's training key.
        workdir: if given, checkpoints go to ``workdir/checkpoints`` (the newest ``max_to_keep``
            kept, one every ``ckpt_every`` steps and one at the end) and metrics to
            ``workdir/metrics.jsonl``. If a checkpoint exists there, training resumes from the
            newest one (same command, same result: bit-identical to an uninterrupted run on CPU),
            and metric lines past it are dropped.
        log_every: every ``log_every`` steps (and at the last) metrics are fetched to the host
            (the only per-step sync), averaged over the applied steps since the last log, shown on
            the progress bar and appended as one JSON line with ``step``, ``skipped_in_window``,
            ``total_skipped``.
        ema_decay, max_consecutive_skips: see :func:`jdiff.train.make_train_step`.
        progress: show a tqdm progress bar.

    Returns:
        The final :class:`TrainState`.

    Raises:
        FloatingPointError: after ``max_consecutive_skips`` consecutive non-finite steps (checked
            at every log and before every checkpoint, so no checkpoint holds a failed state).
    """
    if num_steps < 0 or log_every < 1 or ckpt_every < 1:
        raise ValueError(
            f"need num_steps >= 0, log_every >= 1, ckpt_every >= 1; got "
            f"{num_steps}, {log_every}, {ckpt_every}"
        )
    if not jax.dtypes.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    data_key, state_key = jax.random.split(key)
    state = init_train_state(init_params, optimizer, state_key)
    step_fn = make_train_step(
        loss_fn, optimizer, ema_decay=ema_decay, max_consecutive_skips=max_consecutive_skips
    )

    ckpt = metrics_path = None
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
        metrics_path = os.path.join(workdir, "metrics.jsonl")
        ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=max_to_keep)
        restored = ckpt.restore_latest(state)
        if restored is not None:
            state = restored
        _trim_metrics(metrics_path, int(state.step))
    start = int(state.step)
    check_skips(state, max_consecutive_skips)

    acc = None
    try:
        with tqdm(total=num_steps, initial=start, disable=not progress, desc="train") as bar:
            for i in range(start, num_steps):
                state, metrics = step_fn(state, batch_fn(data_key, i))
                acc = _accumulate(_zeros_like_metrics(metrics) if acc is None else acc, metrics)
                done = i + 1
                if done % log_every == 0 or done == num_steps:
                    host, total = jax.device_get((acc, state.total_skipped))
                    applied, steps = int(host.pop("_applied")), int(host.pop("_steps"))
                    record = {k: float(v) / max(applied, 1) for k, v in host.items()}
                    if applied == 0:
                        record = dict.fromkeys(host, float("nan"))
                    record = {
                        "step": done,
                        **record,
                        "skipped_in_window": steps - applied,
                        "total_skipped": int(total),
                    }
                    if metrics_path is not None:
                        with open(metrics_path, "a") as f:
                            f.write(json.dumps(_jsonable(record)) + "\n")
                    bar.set_postfix(
                        {k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "grad_norm")}
                    )
                    acc = None
                    check_skips(state, max_consecutive_skips)
                if ckpt is not None and (done % ckpt_every == 0 or done == num_steps):
                    check_skips(state, max_consecutive_skips)
                    ckpt.save(state, step=done)
                bar.update(1)
    finally:
        if ckpt is not None:
            ckpt.close()
    return state


def _jsonable(record: dict) -> dict:
    out = {}
    for k, v in record.items():
        v = np.asarray(v).item() if isinstance(v, np.generic | np.ndarray) else v
        out[k] = None if isinstance(v, float) and not np.isfinite(v) else v
    return out
