"""Tests for jdiff.train: step, NaN guard, EMA, checkpoints and exact resume."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jdiff.data import two_moons
from jdiff.nn import MLP, split_apply
from jdiff.train import (
    Checkpointer,
    check_skips,
    ema_update,
    init_train_state,
    make_train_step,
    train,
)

W_TRUE = jnp.array([1.0, -2.0, 0.5])


def _params():
    return {"w": jnp.zeros(3), "b": jnp.zeros(())}


def loss_fn(params, key, batch):
    """Noisy linear regression; the key perturbs the inputs so the step key matters."""
    x, y = batch
    x = x + 0.01 * jax.random.normal(key, x.shape)
    mse = jnp.mean((x @ params["w"] + params["b"] - y) ** 2)
    return mse, {"mse": mse}


@jax.jit
def batch_fn(key, step):
    x = jax.random.normal(jax.random.fold_in(key, step), (16, 3))
    return x, x @ W_TRUE + 0.5


def _assert_trees_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


def test_mlp_loss_decreases(tmp_path):
    """A tiny denoising regression on two moons with an MLP through split_apply."""
    apply_fn, params = split_apply(MLP(2, hidden=(32, 32), embed_dim=16, rngs=nnx.Rngs(0)))

    def dn_loss(p, key, x0):
        kt, ke = jax.random.split(key)
        t = jax.random.uniform(kt, (x0.shape[0],))
        eps = jax.random.normal(ke, x0.shape)
        xt = (1 - t)[:, None] * x0 + t[:, None] * eps
        loss = jnp.mean((apply_fn(p, xt, t) - (eps - x0)) ** 2)
        return loss, {}

    state = train(
        dn_loss,
        optax.adam(1e-2),
        params,
        jax.jit(lambda k, i: two_moons(jax.random.fold_in(k, i), 64)),
        num_steps=200,
        key=jax.random.key(0),
        workdir=tmp_path,
        log_every=25,
        ckpt_every=1000,
        progress=False,
    )
    assert int(state.step) == 200
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records] == list(range(25, 201, 25))
    assert records[-1]["loss"] < 0.85 * records[0]["loss"]


def test_ema_math():
    ema = {"a": jnp.array([1.0, 2.0])}
    new = ema_update(ema, {"a": jnp.array([3.0, 0.0])}, 0.9)
    np.testing.assert_allclose(new["a"], [0.9 * 1 + 0.1 * 3, 0.9 * 2], rtol=1e-6)
    # Inside the step: EMA after one SGD step from EMA = params0.
    opt = optax.sgd(0.1)
    state = init_train_state(_params(), opt, jax.random.key(0))
    p0 = _copy(state.params)
    state, _ = make_train_step(loss_fn, opt, ema_decay=0.75)(state, batch_fn(jax.random.key(1), 0))
    expected = jax.tree.map(lambda a, b: 0.75 * a + 0.25 * b, p0, state.params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), state.ema_params, expected
    )


def _bad_loss(params, key, batch):
    loss, m = loss_fn(params, key, batch[:2])
    kind = batch[2]
    # kind 1: non-finite loss; kind 2: finite loss but NaN gradient (0 * sqrt'(0)).
    loss = jnp.where(kind == 1, jnp.nan, loss)
    s = jnp.where(kind == 2, 0.0, 1.0)
    loss = loss + jnp.sqrt(s + 0.0 * params["w"][0]) - jnp.sqrt(s)
    return loss, m


def test_nan_guard_skips_and_counts():
    opt = optax.adam(1e-2)
    step = make_train_step(_bad_loss, opt, ema_decay=0.9, max_consecutive_skips=3, donate=False)
    x, y = batch_fn(jax.random.key(0), 0)
    state = init_train_state(_params(), opt, jax.random.key(0))
    state, m = step(state, (x, y, 0))
    assert bool(m["finite"])
    for n, kind in enumerate([1, 2], start=1):
        before = state
        state, m = step(state, (x, y, kind))
        assert not bool(m["finite"])
        _assert_trees_equal(state.params, before.params)
        _assert_trees_equal(state.ema_params, before.ema_params)
        _assert_trees_equal(state.opt_state, before.opt_state)
        assert int(state.step) == int(before.step) + 1
        assert int(state.skipped) == n and int(state.total_skipped) == n
    check_skips(state, 3)  # 2 < 3: fine
    state, m = step(state, (x, y, 0))  # a finite step resets the consecutive count
    assert bool(m["finite"]) and int(state.skipped) == 0 and int(state.total_skipped) == 2
    for _ in range(4):  # the 4th is halted: nothing changes, not even step
        state, _ = step(state, (x, y, 1))
    assert int(state.skipped) == 3 and int(state.step) == 7 and int(state.total_skipped) == 5
    with pytest.raises(FloatingPointError, match="3 consecutive"):
        check_skips(state, 3)


def test_train_raises_after_consecutive_skips_and_keeps_last_good_checkpoint(tmp_path):
    def bad_from_5(key, i):
        x, y = batch_fn(key, i)
        return x, y, jnp.where(i >= 5, 1, 0)

    kw = dict(
        num_steps=20,
        key=jax.random.key(0),
        workdir=tmp_path,
        ckpt_every=4,
        log_every=100,
        max_consecutive_skips=3,
        progress=False,
    )
    with pytest.raises(FloatingPointError, match="consecutive"):
        train(_bad_loss, optax.adam(1e-2), _params(), bad_from_5, **kw)
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 4


def _run(workdir, num_steps):
    return train(
        loss_fn,
        optax.adam(5e-2),
        _params(),
        batch_fn,
        num_steps=num_steps,
        key=jax.random.key(42),
        workdir=workdir,
        ckpt_every=3,
        log_every=2,
        ema_decay=0.9,
        max_to_keep=2,
        progress=False,
    )


def test_resume_is_bit_identical(tmp_path):
    straight = _run(tmp_path / "a", 12)
    first = _run(tmp_path / "b", 6)
    assert int(first.step) == 6
    resumed = _run(tmp_path / "b", 12)
    _assert_trees_equal(straight, resumed)
    assert straight.params["w"].shape == (3,)
    # only the last max_to_keep checkpoints are kept
    assert Checkpointer(tmp_path / "b" / "checkpoints").all_steps() == [9, 12]
    lines = [json.loads(s)["step"] for s in open(tmp_path / "b" / "metrics.jsonl")]
    assert lines == [2, 4, 6, 8, 10, 12]


def test_partial_checkpoint_is_ignored(tmp_path):
    _run(tmp_path, 6)
    ckdir = tmp_path / "checkpoints"
    # Simulate a crash mid-save of step 9: an unfinished temporary directory with partial files.
    partial = ckdir / "9.orbax-checkpoint-tmp-1234567"
    shutil.copytree(ckdir / "6", partial)
    for root, _, files in os.walk(partial):
        for f in files[: len(files) // 2 + 1]:
            os.remove(os.path.join(root, f))
    ck = Checkpointer(ckdir)
    assert ck.latest_step() == 6
    like = init_train_state(_params(), optax.adam(5e-2), jax.random.key(0))
    assert int(ck.restore_latest(like).step) == 6
    ck.close()
    assert int(_run(tmp_path, 8).step) == 8
