"""Tests for jdiff.analytic: closed-form oracles checked against autodiff, quadrature and Bayes.

Every test runs in float64 through the `jax.enable_x64(True)` context (an autouse fixture), so
the rest of the suite keeps JAX's default float32.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jdiff.analytic import Gaussian, GaussianMixture, PointSet
from jdiff.model import PREDICTIONS
from jdiff.process import EDM, VE, VP, Linear, SubVP, Trig


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _mixture():
    weights = jnp.array([0.2, 0.5, 0.3])
    means = jnp.array([[1.0, 0.0], [-1.0, 2.0], [0.5, -1.5]])
    covs = jnp.array(
        [[[1.0, 0.3], [0.3, 0.5]], [[0.2, 0.0], [0.0, 0.4]], [[0.6, -0.2], [-0.2, 0.3]]]
    )
    return GaussianMixture(weights, means, covs)


def _x(b=5, d=2, seed=0):
    return 1.5 * jax.random.normal(jax.random.key(seed), (b, d), jnp.float64)


def _times(p):
    return [p.t_min, 0.5 * (p.t_min + p.t_max), p.t_max]


PROCESSES = [VP(), EDM(), Linear(), Trig()]
IDS = ["vp", "edm", "linear", "trig"]


# --- mixture: score, Tweedie, model kinds ------------------------------------------------------
@pytest.mark.parametrize("process", PROCESSES, ids=IDS)
def test_mixture_score_is_grad_of_marginal_log_prob(process):
    gm, x = _mixture(), _x()
    for t in _times(process):
        grad = jax.grad(lambda y, t=t: jnp.sum(gm.marginal_log_prob(y, t, process)))(x)
        np.testing.assert_allclose(gm.score(x, t, process), grad, rtol=1e-10, atol=1e-12)
    # per-example times [B]
    t = jnp.linspace(process.t_min, process.t_max, x.shape[0])
    grad = jax.grad(lambda y: jnp.sum(gm.marginal_log_prob(y, t, process)))(x)
    np.testing.assert_allclose(gm.score(x, t, process), grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("process", PROCESSES, ids=IDS)
def test_mixture_tweedie(process):
    gm, x = _mixture(), _x()
    t = jnp.linspace(process.t_min, 0.9 * process.t_max, x.shape[0])
    a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]
    tweedie = (x + s**2 * gm.score(x, t, process)) / a
    np.testing.assert_allclose(gm.x0(x, t, process), tweedie, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(gm.eps(x, t, process), (x - a * gm.x0(x, t, process)) / s, 1e-8)


@pytest.mark.parametrize("process", PROCESSES, ids=IDS)
def test_model_kinds_agree(process):
    gm, x = _mixture(), _x()
    t = jnp.linspace(process.t_min, 0.9 * process.t_max, x.shape[0])
    truth = {k: gm.predict(k, x, t, process) for k in PREDICTIONS}
    for kind in PREDICTIONS:
        model = gm.model(process, kind)
        for other in PREDICTIONS:
            np.testing.assert_allclose(
                model.predict(other, x, t), truth[other], rtol=1e-8, atol=1e-9, err_msg=kind + other
            )


@pytest.mark.parametrize("process", [Linear(), Trig()], ids=["linear", "trig"])
def test_exact_predictions_finite_at_both_ends(process):
    gm, x = _mixture(), _x()
    for t in (0.0, 1.0):  # σ = 0 and α = 0
        for kind in PREDICTIONS:
            out = gm.model(process, kind).raw(x, t)
            assert bool(jnp.all(jnp.isfinite(out))), (kind, t)
    # at α = 0 the denoiser is the data mean and ε̂ = x/σ
    np.testing.assert_allclose(gm.x0(x, 1.0, process), jnp.broadcast_to(gm.mean(), x.shape))
    np.testing.assert_allclose(gm.eps(x, 1.0, process), x, atol=1e-12)


@pytest.mark.parametrize("process", [VP(), SubVP(), EDM()], ids=["vp", "subvp", "edm"])
def test_velocity_is_pf_ode_drift_including_sigma_zero(process):
    # v = f x − ½ g² ∇log p_t; finite at σ = 0 even where σ' = ∞ (VP)
    gm, x = _mixture(), _x()
    for t in (0.0, 0.5):
        v = gm.model(process, "velocity").raw(x, t)
        drift = process.f(t) * x - 0.5 * process.g2(t) * gm.score(x, t, process)
        np.testing.assert_allclose(v, drift, rtol=1e-9, atol=1e-12)


def test_denoiser_equals_posterior_mean_by_quadrature():
    # 1-D two-component mixture: E[x0 | x_t] = ∫ x0 p(x0) N(x_t; α x0, σ²) / ∫ p(x0) N(...)
    gm = GaussianMixture(
        jnp.array([0.4, 0.6]), jnp.array([[-1.0], [1.5]]), jnp.array([[[0.09]], [[0.25]]])
    )
    grid = np.linspace(-8.0, 8.0, 8001)
    p0 = np.exp(np.asarray(gm.log_prob(grid[:, None])))
    xt = np.array([[-2.0], [-0.3], [0.4], [1.0], [3.0]])
    for process, t in [(VP(), 0.3), (Linear(), 0.5), (EDM(), 0.7)]:
        a, s = float(process.alpha(t)), float(process.sigma(t))
        lik = np.exp(-0.5 * (xt - a * grid[None]) ** 2 / s**2)  # [B, G]
        num = np.trapezoid(lik * p0 * grid, grid, axis=-1)
        den = np.trapezoid(lik * p0, grid, axis=-1)
        np.testing.assert_allclose(gm.x0(xt, t, process)[:, 0], num / den, rtol=1e-7, atol=1e-8)


# --- marginal densities ------------------------------------------------------------------------
def test_log_prob_matches_scipy_and_marginal_at_t0():
    gm, x = _mixture(), _x()
    ref = np.log(
        sum(
            float(w) * multivariate_normal(np.asarray(m), np.asarray(c)).pdf(np.asarray(x))
            for w, m, c in zip(gm.weights, gm.means, gm.covs, strict=True)
        )
    )
    np.testing.assert_allclose(gm.log_prob(x), ref, rtol=1e-10)
    vp = VP()
    np.testing.assert_allclose(gm.marginal_log_prob(x, 0.0, vp), ref, rtol=1e-10)  # σ = 0
    np.testing.assert_allclose(gm.marginal_log_prob(x, 1e-7, vp), ref, rtol=1e-4)


@pytest.mark.parametrize("process, t", [(VP(), 1.0), (Linear(), 0.9), (EDM(), 0.5)])
def test_marginal_density_integrates_to_one(process, t):
    gm = _mixture()
    r = 4.0 * float(jnp.sqrt(process.alpha(t) ** 2 * 4.0 + process.sigma(t) ** 2)) + 3.0
    g = np.linspace(-r, r, 301)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], -1)
    dens = np.exp(np.asarray(gm.marginal_log_prob(pts, t, process))).reshape(xx.shape)
    total = np.trapezoid(np.trapezoid(dens, g, axis=1), g)
    np.testing.assert_allclose(total, 1.0, atol=1e-4)


# --- class posterior and conditional models ----------------------------------------------------
def test_class_posterior_is_bayes_rule():
    gm, x, process, t = _mixture(), _x(), VP(), 0.4
    a, s = float(process.alpha(t)), float(process.sigma(t))
    joint = np.stack(
        [
            float(w)
            * multivariate_normal(a * np.asarray(m), a**2 * np.asarray(c) + s**2 * np.eye(2)).pdf(
                np.asarray(x)
            )
            for w, m, c in zip(gm.weights, gm.means, gm.covs, strict=True)
        ],
        -1,
    )
    post = gm.class_posterior(x, t, process)
    np.testing.assert_allclose(jnp.sum(post, -1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(post, joint / joint.sum(-1, keepdims=True), rtol=1e-9)
    # ∇ log p_t(c|x) = score(x|c) − score(x): the exact classifier gradient
    c = jnp.array([0, 1, 2, 1, 0])
    grad = jax.grad(
        lambda y: jnp.sum(
            jnp.take_along_axis(gm.log_class_posterior(y, t, process), c[:, None], -1)
        )
    )(x)
    np.testing.assert_allclose(
        grad, gm.score(x, t, process, c) - gm.score(x, t, process), atol=1e-10
    )


@pytest.mark.parametrize("kind", ["eps", "velocity"])
def test_conditional_model_labels(kind):
    gm, x, process = _mixture(), _x(), Linear()
    t = jnp.full((x.shape[0],), 0.6)
    cm = gm.conditional_model(process, kind)
    assert gm.null_label == 3
    for k in range(3):
        labels = jnp.full((x.shape[0],), k)
        np.testing.assert_allclose(
            cm.eps(x, t, labels), gm.component_model(k, process).eps(x, t), rtol=1e-10
        )
        np.testing.assert_allclose(
            gm.marginal_log_prob(x, t, process, labels),
            gm.component(k).marginal_log_prob(x, t, process),
            rtol=1e-12,
        )
    marginal = gm.model(process, kind).eps(x, t)
    np.testing.assert_allclose(cm.eps(x, t, jnp.full((5,), 3)), marginal, rtol=1e-12)
    np.testing.assert_allclose(cm.eps(x, t, None), marginal, rtol=1e-12)
    mixed = jnp.array([0, 3, 2, 3, 1])
    out = cm.eps(x, t, mixed)
    np.testing.assert_allclose(out[1], marginal[1], rtol=1e-12)
    np.testing.assert_allclose(out[4], gm.component_model(1, process).eps(x, t)[4], rtol=1e-10)
    with pytest.raises(ValueError, match="labels must lie"):
        cm.eps(x, t, jnp.full((5,), 4))
    with pytest.raises(ValueError, match="integers"):
        cm.eps(x, t, jnp.full((5,), 1.0))


# --- Gaussian flow map -------------------------------------------------------------------------
def _gaussian():
    return Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.4], [0.4, 0.5]]))


@pytest.mark.parametrize("process", [VP(), Linear(), EDM()], ids=["vp", "linear", "edm"])
def test_gaussian_flow_map(process):
    g, x = _gaussian(), _x()
    s = jnp.array([0.9, 0.7, 0.5, 0.3, 0.6]) * process.t_max
    t = jnp.array([0.2, 0.4, 0.1, 0.25, 0.9]) * process.t_max
    np.testing.assert_allclose(g.flow_map(x, s, s, process), x, rtol=1e-13, atol=1e-13)
    # ∂_t Ψ_{s→t}(x) equals the exact PF-ODE velocity at Ψ_{s→t}(x)
    y, dy = jax.jvp(lambda tt: g.flow_map(x, s, tt, process), (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(dy, g.model(process, "eps").velocity(y, t), rtol=1e-9, atol=1e-10)
    # semigroup: Ψ_{u→t} ∘ Ψ_{s→u} = Ψ_{s→t}
    u = 0.5 * (s + t)
    np.testing.assert_allclose(
        g.flow_map(g.flow_map(x, s, u, process), u, t, process), y, rtol=1e-11, atol=1e-12
    )
    # pushes p_s to p_t: M C_s Mᵀ = C_t for the linear part M (columns Ψ(x + e_i) − Ψ(x))
    s0, t0 = float(s[0]), float(t[0])
    basis = x[2] + jnp.concatenate([jnp.eye(2), jnp.zeros((3, 2))])
    psi = np.asarray(g.flow_map(basis, s0, t0, process))
    m = (psi[:2] - psi[2]).T
    cov = np.asarray(g.cov)
    c = lambda tt: float(process.alpha(tt)) ** 2 * cov + float(process.sigma(tt)) ** 2 * np.eye(2)  # noqa: E731
    np.testing.assert_allclose(m @ c(s0) @ m.T, c(t0), rtol=1e-10, atol=1e-12)


def test_isotropic_flow_map_closed_form_and_average_velocity():
    mu, c, process = jnp.array([1.0, -2.0]), 0.7, Trig()
    g, x, s, t = Gaussian.isotropic(mu, c), _x(), 0.8, 0.3
    r = lambda tt: jnp.sqrt(process.alpha(tt) ** 2 * c**2 + process.sigma(tt) ** 2)  # noqa: E731
    expected = process.alpha(t) * mu + r(t) / r(s) * (x - process.alpha(s) * mu)
    np.testing.assert_allclose(g.flow_map(x, s, t, process), expected, rtol=1e-12)
    np.testing.assert_allclose(
        g.average_velocity(x, s, t, process), (expected - x) / (t - s), rtol=1e-11
    )
    # flow to the data end: consistency-model target
    assert bool(jnp.all(jnp.isfinite(g.flow_map(x, 1.0, 0.0, process))))


# --- PointSet ----------------------------------------------------------------------------------
def test_pointset_single_point_denoiser_is_the_point():
    y = jnp.array([[0.3, -1.2]])
    ps, x = PointSet(y), _x()
    for process in (VP(), EDM(), Linear(), Trig(), VE()):
        for t in _times(process):
            np.testing.assert_allclose(
                ps.x0(x, t, process), jnp.broadcast_to(y, x.shape), rtol=1e-14
            )


def test_pointset_score_and_kinds():
    ps = PointSet(jnp.array([[0.0, 1.0], [2.0, -1.0], [-1.0, -1.0]]), jnp.array([0.5, 0.25, 0.25]))
    x, process = _x(), VP()
    for t in (0.05, 0.5, 1.0):
        grad = jax.grad(lambda y, t=t: jnp.sum(ps.marginal_log_prob(y, t, process)))(x)
        np.testing.assert_allclose(ps.score(x, t, process), grad, rtol=1e-9, atol=1e-10)
    t = jnp.linspace(0.05, 0.9, 5)
    v = ps.model(process, "velocity")
    np.testing.assert_allclose(v.eps(x, t), ps.eps(x, t, process), rtol=1e-8)
    np.testing.assert_allclose(jnp.sum(ps.posterior(x, t, process), -1), 1.0, rtol=1e-12)
    # σ = 0: nearest point, no NaN
    np.testing.assert_allclose(ps.x0(jnp.array([[1.9, -0.8]]), 0.0, process), [[2.0, -1.0]])


# --- construction, validation, tracing, sampling -----------------------------------------------
def test_validation_errors():
    eye = jnp.eye(2)[None]
    with pytest.raises(ValueError, match=r"means must have shape \[K, D\]"):
        GaussianMixture(jnp.ones(1), jnp.zeros(2), eye)
    with pytest.raises(ValueError, match="covs must have shape"):
        GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.eye(3)[None])
    with pytest.raises(ValueError, match="weights must have shape"):
        GaussianMixture(jnp.ones(2) / 2, jnp.zeros((1, 2)), eye)
    with pytest.raises(ValueError, match="strictly positive"):
        GaussianMixture(jnp.array([1.5, -0.5]), jnp.zeros((2, 2)), jnp.concatenate([eye, eye]))
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(jnp.array([1.0, 2.0]), jnp.zeros((2, 2)), jnp.concatenate([eye, eye]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([[[1.0, 0.5], [0.0, 1.0]]]))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(jnp.ones(1), jnp.zeros((1, 2)), jnp.array([[[1.0, 2.0], [2.0, 1.0]]]))
    with pytest.raises(ValueError, match="cov must have shape"):
        Gaussian(jnp.zeros(2), jnp.eye(3))
    with pytest.raises(ValueError, match="points must have shape"):
        PointSet(jnp.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        PointSet(jnp.array([[jnp.nan, 0.0]]))
    with pytest.raises(ValueError, match="weights must have shape"):
        PointSet(jnp.zeros((2, 2)), jnp.ones(3) / 3)
    gm = _mixture()
    with pytest.raises(ValueError, match="valid choices"):
        gm.model(VP(), "velocity_field")
    with pytest.raises(ValueError, match="scalar or have shape"):
        gm.score(_x(), jnp.ones(3) * 0.5, VP())
    with pytest.raises(ValueError, match="numbers per example"):
        gm.score(jnp.zeros((4, 3)), 0.5, VP())
    # weights within tolerance are renormalised exactly
    w = GaussianMixture(
        jnp.array([0.5, 0.50001]), jnp.zeros((2, 2)), jnp.concatenate([eye, eye])
    ).weights
    np.testing.assert_allclose(jnp.sum(w), 1.0, rtol=1e-15)


def test_model_traces_once_for_new_values():
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def velocity(model, x, t):
        return model.velocity(x, t)

    x, t, process = _x(), jnp.full((5,), 0.5), Linear()
    a = velocity(_mixture().model(process, "x0"), x, t)
    other = GaussianMixture(jnp.array([0.6, 0.2, 0.2]), 2.0 * _mixture().means, _mixture().covs)
    b = velocity(other.model(process, "x0"), x, t)
    np.testing.assert_allclose(b, other.velocity(x, t, process), rtol=1e-12)
    assert not np.allclose(a, b)


def test_image_shaped_inputs_and_sampling():
    gm, x = _mixture(), _x()
    out = gm.model(VP(), "velocity").raw(x.reshape(5, 1, 2), 0.3)
    assert out.shape == (5, 1, 2)
    np.testing.assert_allclose(out[:, 0], gm.velocity(x, 0.3, VP()), rtol=1e-14)
    xs, labels = gm.sample_with_labels(jax.random.key(1), 20000)
    assert xs.shape == (20000, 2) and labels.dtype == jnp.int32
    xs, labels = np.asarray(xs), np.asarray(labels)
    np.testing.assert_allclose(xs.mean(0), gm.mean(), atol=0.03)
    np.testing.assert_allclose(np.cov(xs.T), gm.covariance(), atol=0.05)
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 20000, gm.weights, atol=0.015)
    pts = PointSet(jnp.array([[0.0], [1.0]]), jnp.array([0.25, 0.75])).sample(
        jax.random.key(2), 4000
    )
    np.testing.assert_allclose(np.mean(pts), 0.75, atol=0.03)
