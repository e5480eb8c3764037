"""Tests for jdiff.loss: the denoising loss template, its targets, weightings and time laws."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdiff.loss import (
    TARGETS,
    EDMWeighting,
    LikelihoodWeighting,
    LogitNormalTime,
    LogNormalTime,
    UniformTime,
    drop_labels,
    equivalence_factor,
    get_time_distribution,
    get_weighting,
    make_edm_loss,
    make_loss,
    target_value,
)
from jdiff.model import EDMPrecond, Model
from jdiff.process import EDM, VP, Linear, Trig

MU, C = 0.7, 0.8  # Gaussian data N(MU, C^2 I)


def _coeffs(process, t, x):
    a = process.alpha(t).reshape((-1,) + (1,) * (x.ndim - 1))
    s = process.sigma(t).reshape((-1,) + (1,) * (x.ndim - 1))
    return a, s


def gaussian_eps(params, x, t, cond):
    """Exact E[eps | x_t] for N(MU, C^2 I) data, then `scale * . + shift` (params)."""
    process = params["process"]
    a, s = _coeffs(process, t, x)
    eps = s * (x - a * MU) / (a**2 * C**2 + s**2)
    return params["scale"] * eps + params["shift"]


def gaussian_x0(params, x, t, cond):
    """Exact E[x0 | x_t] for N(MU, C^2 I) data, then `scale * . + shift`."""
    process = params["process"]
    a, s = _coeffs(process, t, x)
    x0 = MU + a * C**2 * (x - a * MU) / (a**2 * C**2 + s**2)
    return params["scale"] * x0 + params["shift"]


def _params(process, scale=1.0, shift=0.0):
    return {"process": process, "scale": jnp.float32(scale), "shift": jnp.float32(shift)}


def _data(key, b=4096, d=2):
    return MU + C * jax.random.normal(key, (b, d))


# (scale, shift) of the exact model (first) and of perturbed ones, evaluated in one vmapped program.
PERTURB = jnp.array([[1.0, 0.0], [1.05, 0.0], [0.95, 0.0], [1.0, 0.05], [1.0, -0.05], [1.1, 0.1]])


def _losses_and_grads(loss, params_of, key, x0):
    """Loss values and d(loss)/d(scale, shift) at every row of `PERTURB`, one compiled program."""

    def one(ss):
        return jax.value_and_grad(lambda ss: loss(params_of(ss), key, x0)[0])(ss)

    return jax.jit(jax.vmap(one))(PERTURB)


def _check_minimum(values, grads):
    best = values[0]
    assert bool(jnp.all(best < values[1:5])), values
    # The expected gradient w.r.t. (scale, shift) vanishes at the exact model: small next to the
    # gradient at a perturbed model (last row).
    assert bool(jnp.all(jnp.abs(grads[0]) < 0.2 * jnp.abs(grads[-1]))), grads


@pytest.mark.parametrize(
    "process, prediction, target",
    [
        (VP(), "eps", "eps"),
        (VP(), "eps", "x0"),
        (Linear(), "eps", "velocity"),
        (Trig(), "x0", "velocity"),
    ],
)
def test_exact_model_minimises_loss(process, prediction, target):
    apply_fn = gaussian_eps if prediction == "eps" else gaussian_x0
    loss = make_loss(apply_fn, process, prediction=prediction, target=target)
    values, grads = _losses_and_grads(
        loss, lambda ss: _params(process, ss[0], ss[1]), jax.random.key(1), _data(jax.random.key(2))
    )
    _check_minimum(values, grads)


def test_exact_gaussian_mixture_oracle_minimises_loss():
    analytic = pytest.importorskip("jdiff.analytic")
    gm = analytic.GaussianMixture(
        jnp.array([0.3, 0.7]),
        jnp.array([[-1.0, 0.5], [1.0, 0.0]]),
        jnp.stack([0.2 * jnp.eye(2)] * 2),
    )
    process = VP()
    exact = gm.model(process, "eps")
    x0 = gm.sample(jax.random.key(0), 2048)

    def apply_fn(p, x, t, c):
        return p[0] * exact.eps(x, t) + p[1]

    loss = make_loss(apply_fn, process, target="x0")
    _check_minimum(*_losses_and_grads(loss, lambda ss: ss, jax.random.key(3), x0))


@pytest.mark.parametrize("process", [VP(), Linear(), Trig(), EDM()])
def test_per_sample_equivalences(process):
    """||s^-s||² = σ^-2||ε^-ε||² = α²σ^-4||x^-x||² = (α/(σ(α'σ-ασ')))²||u^-u||² (monograph §3.0)."""
    b = 64
    x0 = _data(jax.random.key(0), b, 3)
    lo, hi = process.t_min, process.t_max
    t = jax.random.uniform(
        jax.random.key(1), (b,), minval=lo + 0.05 * (hi - lo), maxval=lo + 0.9 * (hi - lo)
    )

    @jax.jit
    def squared_errors(x0, t):
        x_t, eps = process.perturb(jax.random.key(2), x0, t)
        model = Model(gaussian_eps, _params(process, 1.1, 0.2), process, "eps")
        return {
            k: jnp.sum((model.predict(k, x_t, t) - target_value(process, k, x0, eps, t)) ** 2, -1)
            for k in TARGETS
        }

    sq = squared_errors(x0, t)
    a, s = process.alpha(t), process.sigma(t)
    da, ds = process.dalpha(t), process.dsigma(t)
    rtol = 2e-3
    np.testing.assert_allclose(sq["score"], sq["eps"] / s**2, rtol=rtol)
    np.testing.assert_allclose(sq["score"], a**2 / s**4 * sq["x0"], rtol=rtol)
    np.testing.assert_allclose(
        sq["score"], (a / (s * (da * s - a * ds))) ** 2 * sq["velocity"], rtol=rtol
    )
    np.testing.assert_allclose(sq["v"], ((a**2 + s**2) / a) ** 2 * sq["eps"], rtol=rtol)
    for k_from in TARGETS:
        for k_to in TARGETS:
            f = equivalence_factor(process, t, k_from, k_to)
            np.testing.assert_allclose(sq[k_to], f * sq[k_from], rtol=rtol)


@pytest.mark.parametrize("process", [VP(), Linear()])
def test_native_weightings_make_loss_target_independent(process):
    key = jax.random.key(4)
    x0 = _data(jax.random.key(5), 256, 2)
    p = _params(process, 1.1, 0.2)

    @jax.jit
    def all_values(p):
        return jnp.array(
            [
                [
                    make_loss(gaussian_eps, process, target=k, weighting=w)(p, key, x0)[0]
                    for k in TARGETS
                ]
                for w in ("likelihood", "edm")
            ]
        )

    values = all_values(p)
    np.testing.assert_allclose(values, values[:, :1] * jnp.ones_like(values), rtol=2e-3)


def test_likelihood_weighting_eps_form():
    """Likelihood weighting on the eps target is g²/σ² (Song et al. 2021)."""
    process = VP()
    key = jax.random.key(6)
    x0 = _data(jax.random.key(7), 128, 2)
    p = _params(process, 1.1, 0.2)
    ref = make_loss(
        gaussian_eps, process, weighting=lambda t: process.g2(t) / process.sigma(t) ** 2
    )
    got = make_loss(gaussian_eps, process, weighting=LikelihoodWeighting())
    ref, got = jax.jit(lambda p: (ref(p, key, x0)[0], got(p, key, x0)[0]))(p)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_snr_weighting_x0_equals_constant_eps():
    process = VP()
    key, x0 = jax.random.key(8), _data(jax.random.key(9), 128, 2)
    p = _params(process, 1.1, 0.2)
    la = make_loss(gaussian_eps, process, target="x0", weighting="snr")
    lb = make_loss(gaussian_eps, process, target="eps")
    a, b = jax.jit(lambda p: (la(p, key, x0)[0], lb(p, key, x0)[0]))(p)
    np.testing.assert_allclose(a, b, rtol=2e-3)


@pytest.mark.parametrize("process", [EDM(), VP()])
def test_edm_loss_unit_target_variance(process):
    """With F ≡ 0 the EDM loss is E‖F_target‖²/D = 1 for data of variance σ_d² (App. D.6)."""
    sd = 0.5
    loss = jax.jit(make_edm_loss(lambda p, x, c_noise, c: jnp.zeros_like(x), process, sd))
    x0 = sd * jax.random.normal(jax.random.key(0), (8192, 4))
    val, metrics = loss(None, jax.random.key(1), x0)
    assert abs(float(val) - 1.0) < 0.05, float(val)


def test_lognormal_time_edm_statistics():
    t = LogNormalTime(EDM()).sample(jax.random.key(0), (20000,))
    ln = np.log(np.asarray(t))
    assert abs(ln.mean() + 1.2) < 4 * 1.2 / np.sqrt(ln.size)
    assert abs(ln.std() - 1.2) < 0.03


def test_lognormal_time_general_process():
    """For VP, ln σ̄ = −λ(t) follows N(P_mean, P_std²) (clipping is negligible here)."""
    process = VP()
    t = LogNormalTime(process, p_mean=-0.5, p_std=1.0).sample(jax.random.key(1), (20000,))
    assert float(t.min()) >= process.t_min and float(t.max()) <= process.t_max
    ln_sigma_bar = -np.asarray(process.lam(t))
    assert abs(ln_sigma_bar.mean() + 0.5) < 0.03
    assert abs(ln_sigma_bar.std() - 1.0) < 0.03


def test_logit_normal_and_uniform_time_in_range():
    process = Linear()
    for dist in (
        LogitNormalTime.of(process),
        UniformTime.of(process),
        get_time_distribution("uniform", process),
    ):
        t = np.asarray(dist.sample(jax.random.key(2), (10000,)))
        assert t.min() >= process.t_min and t.max() <= process.t_max
        assert abs(np.median(t) - 0.5 * (process.t_min + process.t_max)) < 0.03
    t = np.asarray(LogitNormalTime(0.2, 0.6, mean=1.0, std=0.5).sample(jax.random.key(3), (5000,)))
    assert t.min() >= 0.2 and t.max() <= 0.6
    assert abs(np.median(t) - (0.2 + 0.4 * jax.nn.sigmoid(1.0))) < 0.01


def test_cond_dropout_fraction():
    labels = jnp.full((20000,), 3)
    out = np.asarray(drop_labels(jax.random.key(0), labels, 0.2, 10))
    assert set(np.unique(out)) == {3, 10}
    assert abs((out == 10).mean() - 0.2) < 0.02

    # Through the loss: the network outputs 1 where it sees the null label, targets are 0, so the
    # loss is the fraction of dropped labels.
    def apply_fn(p, x, t, c):
        return jnp.broadcast_to((c == 7)[:, None].astype(x.dtype), x.shape)

    loss = make_loss(apply_fn, Linear(), prediction="x0", cond_dropout=0.3, num_classes=7)
    batch = {"x": jnp.zeros((20000, 1)), "label": jnp.zeros((20000,), jnp.int32)}
    val, _ = jax.jit(loss)(None, jax.random.key(1), batch)
    assert abs(float(val) - 0.3) < 0.02
    with pytest.raises(ValueError, match="num_classes"):
        make_loss(apply_fn, Linear(), cond_dropout=0.1)
    with pytest.raises(ValueError, match="label"):
        loss(None, jax.random.key(0), jnp.zeros((4, 1)))


def test_labels_reach_network_without_dropout():
    def apply_fn(p, x, t, c):
        return jnp.broadcast_to(c[:, None].astype(x.dtype), x.shape)

    loss = make_loss(apply_fn, Linear(), prediction="x0")
    batch = {"x": jnp.zeros((8, 2)), "label": jnp.full((8,), 2)}
    np.testing.assert_allclose(jax.jit(loss)(None, jax.random.key(0), batch)[0], 4.0)


def test_bad_names_raise_with_choices():
    process = VP()
    with pytest.raises(ValueError, match="velocity"):
        make_loss(gaussian_eps, process, target="flow")
    with pytest.raises(ValueError, match="logit_normal"):
        make_loss(gaussian_eps, process, time_dist="beta")
    with pytest.raises(ValueError, match="likelihood"):
        make_loss(gaussian_eps, process, weighting="min_snr")
    with pytest.raises(ValueError, match="valid choices"):
        make_loss(gaussian_eps, process, prediction="noise")
    with pytest.raises(ValueError, match="valid choices"):
        get_weighting(3)
    with pytest.raises(ValueError):
        make_loss(gaussian_eps, process, cond_dropout=1.5, num_classes=3)
    with pytest.raises(ValueError):
        make_loss(gaussian_eps)
    with pytest.raises(ValueError):
        EDMWeighting(sigma_data=-1.0)


def test_jit_grad_and_metrics():
    process = VP()
    w = jax.random.normal(jax.random.key(0), (3, 3)) * 0.1

    def apply_fn(p, x, t, c):
        return jnp.tanh(x @ p["w"] + p["b"] * t[:, None])

    loss = make_loss(apply_fn, process, weighting="snr", time_dist="logit_normal")
    params = {"w": w, "b": jnp.ones(3)}
    x0 = _data(jax.random.key(1), 64, 3)
    key = jax.random.key(2)
    (val, metrics), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, key, x0)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert set(metrics) == {"loss", "mse", "loss_q0", "loss_q1", "loss_q2", "loss_q3"}
    # The quarter losses, weighted by their counts, recover the loss.
    t = LogitNormalTime.of(process).sample(jax.random.split(key, 3)[0], (64,))
    q = np.clip(
        np.floor(4 * (np.asarray(t) - process.t_min) / (process.t_max - process.t_min)), 0, 3
    )
    counts = np.array([(q == i).sum() for i in range(4)])
    total = sum(counts[i] * float(metrics[f"loss_q{i}"]) for i in range(4)) / 64
    np.testing.assert_allclose(total, val, rtol=1e-4)


def test_model_template_and_edm_wrapper_agree_with_make_loss():
    process = EDM()
    template = Model(gaussian_eps, None, process, "eps")
    key, x0 = jax.random.key(0), _data(jax.random.key(1), 32, 2)
    p = _params(process, 1.1, 0.1)
    la = make_loss(template, target="x0", weighting="edm")
    lb = make_loss(gaussian_eps, process, target="x0", weighting=EDMWeighting(0.5))

    def f(p, x, c_noise, c):
        return p * x

    lc = make_edm_loss(f, process, sigma_data=0.3)
    ld = make_loss(f, process, precond=EDMPrecond(0.3), weighting="edm", time_dist="lognormal")
    a, b, c, d = jax.jit(
        lambda p: (la(p, key, x0)[0], lb(p, key, x0)[0], lc(0.5, key, x0)[0], ld(0.5, key, x0)[0])
    )(p)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(c, d, rtol=1e-6)
