"""Tests for jdiff.nn: embeddings, MLP, split_apply."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdiff.nn import MLP, FourierEmbedding, FourierFrequencies, SinusoidalEmbedding, split_apply

B, D = 4, 3


def _x_t():
    x = jax.random.normal(jax.random.key(0), (B, D))
    t = jnp.linspace(0.01, 1.0, B)
    return x, t


def test_embedding_shapes_and_fourier_not_param():
    t = jnp.array([0.0, 0.5, 80.0])
    assert SinusoidalEmbedding(8)(t).shape == (3, 8)
    emb = FourierEmbedding(8, rngs=nnx.Rngs(0))
    assert emb(t).shape == (3, 8)
    assert isinstance(emb.freqs, FourierFrequencies) and not isinstance(emb.freqs, nnx.Param)
    assert len(jax.tree.leaves(nnx.state(emb, nnx.Param))) == 0
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(7)


@pytest.mark.parametrize("time_embed", ["sinusoidal", "fourier"])
def test_mlp_shapes(time_embed):
    net = MLP(D, hidden=(16, 16), time_embed=time_embed, embed_dim=8, rngs=nnx.Rngs(0))
    x, t = _x_t()
    assert net(x, t).shape == (B, D)
    assert net(x, 0.3).shape == (B, D)  # scalar time broadcasts
    with pytest.raises(ValueError, match="num_classes=None"):
        net(x, t, jnp.zeros(B, jnp.int32))
    with pytest.raises(ValueError, match="time_embed"):
        MLP(D, time_embed="bogus", rngs=nnx.Rngs(0))


def test_null_label():
    net = MLP(D, hidden=(16,), embed_dim=8, num_classes=5, rngs=nnx.Rngs(0))
    x, t = _x_t()
    null = jnp.full((B,), net.null_label, jnp.int32)
    np.testing.assert_array_equal(net(x, t), net(x, t, null))
    assert not np.allclose(net(x, t, jnp.zeros(B, jnp.int32)), net(x, t))


def test_bf16_compute_f32_params():
    net = MLP(D, hidden=(16,), embed_dim=8, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    x, t = _x_t()
    params = nnx.state(net, nnx.Param)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    out = net(x, t)
    assert out.dtype == jnp.float32 and out.shape == (B, D)
    ref = MLP(D, hidden=(16,), embed_dim=8, rngs=nnx.Rngs(0))(x, t)
    np.testing.assert_allclose(out, ref, atol=5e-2, rtol=5e-2)


def test_split_apply_round_trip_and_no_retrace():
    net = MLP(D, hidden=(16,), time_embed="fourier", embed_dim=8, num_classes=3, rngs=nnx.Rngs(1))
    x, t = _x_t()
    cond = jnp.array([0, 1, 2, 3])
    apply_fn, params = split_apply(net)
    # Fourier frequencies are buffers, not params.
    assert not any(
        "freqs" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)
    )
    np.testing.assert_allclose(apply_fn(params, x, t, cond), net(x, t, cond), rtol=1e-6)
    # Equal modules give equal, equally hashed apply functions.
    apply2, _ = split_apply(net)
    assert apply2 == apply_fn and hash(apply2) == hash(apply_fn)

    @eqx.debug.assert_max_traces(max_traces=1)
    def f(fn, p, x, t):
        return fn(p, x, t)

    jf = jax.jit(f, static_argnums=0)
    y1 = jf(apply_fn, params, x, t)
    params2 = jax.tree.map(lambda a: a + 1.0, params)
    y2 = jf(apply2, params2, x, t)
    assert not np.allclose(y1, y2)
