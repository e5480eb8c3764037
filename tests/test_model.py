"""Model: exact conversions between the five prediction kinds, preconditioning, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jdiff
from jdiff.model import PREDICTIONS, EDMPrecond, Model
from jdiff.process import EDM, VE, VP, Linear, Trig, VPCosine


def _net(params, x, t, cond):
    # an arbitrary smooth nonlinear "network"
    return jnp.tanh(x @ params["w"] + params["b"] * t[:, None])


PARAMS = {"w": jnp.asarray([[0.7, -0.3], [0.2, 1.1]]), "b": jnp.asarray([0.5, -0.25])}


@pytest.mark.parametrize("process", [VP(), VPCosine(), VE(), EDM(), Linear(), Trig()])
@pytest.mark.parametrize("kind", PREDICTIONS)
def test_conversions_round_trip(process, kind, x64):
    x = jax.random.normal(jax.random.key(0), (5, 2))
    t = jnp.linspace(process.t_min + 0.1 * (process.t_max - process.t_min), 0.9 * process.t_max, 5)
    base = Model(_net, PARAMS, process, kind)
    views = {k: base.predict(k, x, t) for k in PREDICTIONS}
    # the model's own kind is returned untouched
    np.testing.assert_array_equal(views[kind], _net(PARAMS, x, t, None))
    # a model that predicts any other view gives back every view
    for other in PREDICTIONS:
        m = Model(lambda p, x, t, c, other=other: base.predict(other, x, t), PARAMS, process, other)
        for k in PREDICTIONS:
            np.testing.assert_allclose(m.predict(k, x, t), views[k], rtol=1e-9, atol=1e-9)
    # closed-form relations
    a = process.alpha(t)[:, None]
    s = process.sigma(t)[:, None]
    np.testing.assert_allclose(a * views["x0"] + s * views["eps"], x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(views["score"], -views["eps"] / s, rtol=1e-10)
    np.testing.assert_allclose(
        views["v"], a * views["eps"] - s * views["x0"], rtol=1e-9, atol=1e-12
    )
    vel = process.dalpha(t)[:, None] * views["x0"] + process.dsigma(t)[:, None] * views["eps"]
    np.testing.assert_allclose(views["velocity"], vel, rtol=1e-9, atol=1e-12)
    # PF-ODE form: v = f x − ½ g² s
    pf = process.f(t)[:, None] * x - 0.5 * process.g2(t)[:, None] * views["score"]
    np.testing.assert_allclose(views["velocity"], pf, rtol=1e-8, atol=1e-10)


def test_linear_path_conventions(x64):
    # FM: x̂0 = x − t v, ε̂ = x + (1 − t) v
    p = Linear()
    x = jax.random.normal(jax.random.key(1), (4, 2))
    t = jnp.asarray([0.2, 0.4, 0.6, 0.8])
    m = Model(_net, PARAMS, p, "velocity")
    v = m.velocity(x, t)
    np.testing.assert_allclose(m.x0(x, t), x - t[:, None] * v, rtol=1e-12)
    np.testing.assert_allclose(m.eps(x, t), x + (1 - t[:, None]) * v, rtol=1e-12)
    # at t = 1 (α = 0) a velocity model still gives finite x̂0
    assert np.all(np.isfinite(np.asarray(m.x0(x, jnp.ones(4)))))


def test_edm_preconditioning(x64):
    p = EDM()
    pre = EDMPrecond(sigma_data=0.5)
    t = jnp.asarray([1e-8, 0.5, 80.0])
    c_skip, c_out, c_in, c_noise = pre.coefficients(p, t)
    np.testing.assert_allclose(c_skip, 0.25 / (t**2 + 0.25), rtol=1e-12)
    np.testing.assert_allclose(c_out, t * 0.5 / jnp.sqrt(t**2 + 0.25), rtol=1e-12)
    np.testing.assert_allclose(c_in, 1 / jnp.sqrt(t**2 + 0.25), rtol=1e-12)
    np.testing.assert_allclose(c_noise, 0.25 * jnp.log(t), rtol=1e-12)
    assert abs(float(c_skip[0]) - 1) < 1e-12 and float(c_out[0]) < 1e-8
    # unit-variance network input and effective target for data of variance σ_d² (any process)
    for proc in (VP(), Linear()):
        tt = jnp.asarray([0.1, 0.5, 0.9])
        a, s = proc.alpha(tt), proc.sigma(tt)
        _, c_out, c_in, _ = pre.coefficients(proc, tt)
        np.testing.assert_allclose(c_in**2 * (a**2 * 0.25 + s**2), 1.0, rtol=1e-12)
        cs = pre.coefficients(proc, tt)[0]
        # Var(target F) = Var(x0 − c_skip x_t)/c_out² = 1
        var_f = ((1 - cs * a) ** 2 * 0.25 + cs**2 * s**2) / c_out**2
        np.testing.assert_allclose(var_f, 1.0, rtol=1e-10)
    m = Model(lambda prm, x, t, c: jnp.zeros_like(x), None, p, "x0", precond=pre)
    x = jnp.ones((3, 2))
    np.testing.assert_allclose(m.x0(x, t), c_skip[:, None] * x, rtol=1e-12)


def test_validation_errors():
    with pytest.raises(ValueError, match="valid choices"):
        Model(_net, PARAMS, VP(), "noise")
    with pytest.raises(ValueError, match="x0"):
        Model(_net, PARAMS, EDM(), "eps", precond=EDMPrecond())
    with pytest.raises(ValueError, match="AbstractProcess"):
        Model(_net, PARAMS, "vp", "eps")
    bad = Model(lambda p, x, t, c: x[:, :1], None, VP(), "eps")
    with pytest.raises(ValueError, match="shaped like x"):
        bad.eps(jnp.ones((3, 2)), 0.5)
    with pytest.raises(ValueError, match="valid choices"):
        Model(_net, PARAMS, VP(), "eps").predict("flow", jnp.ones((3, 2)), 0.5)


def test_with_params_and_jit():
    m = Model(_net, PARAMS, VP(), "eps")
    m2 = m.with_params(jax.tree.map(lambda a: 2 * a, PARAMS))
    x = jnp.ones((2, 2))
    f = jax.jit(lambda model, x: model.x0(x, 0.3))
    assert not np.allclose(f(m, x), f(m2, x))
    assert jdiff.Model is Model
