"""Guidance on a 2-D Gaussian mixture with known parameters: CFG scales, classifier guidance, and an
inpainting-style inverse problem, all scored against the exact mixture.

1. A class-conditional ε-network (`jdiff.nn.MLP(num_classes=K)`, null label K) is trained with
   label dropout (`jdiff.loss.make_loss(cond_dropout=...)`) on the VP process, and sampled with
   classifier-free guidance at several scales s (s = 0 unconditional, s = 1 conditional).
2. A noise-conditional classifier (`jdiff.guidance.NoiseConditionalClassifier`) is trained with
   `classifier_loss`, and guides the same network's unconditional output (null label).
3. Inverse problem: observe the first coordinate of a held-out point, $y = x_0[0] + \\sigma_y z$,
   and sample the posterior with `dps`, `pigdm` and `projection` (learned prior), compared with
   exact samples of the mixture posterior $p(x_0 \\mid y)$ (a closed-form Gaussian mixture), and,
   with `oracle_reference`, with the same samplers on the exact mixture prior (which isolates the
   approximation error from the network's).

Metrics (`metrics.json` in the run folder): **accuracy** — the fraction of samples whose most
probable class under the exact mixture posterior $p(c \\mid x)$ is the requested class — and the
mean exact posterior probability of the requested class; the **energy distance** between the
samples of each class and exact samples of that class-conditional (averaged over classes); for the
inverse problem, the energy distance to exact posterior samples, the posterior-mean error and the
observation residual. Plots: `scatter_guidance.png` (one panel per scale / method),
`inverse.png`, and the training logs under `model/` and `classifier/`.

    python experiments/guidance_toy.py                   # a few minutes on 2 CPU cores
    python experiments/guidance_toy.py --smoke           # seconds
    python experiments/guidance_toy.py --scales 0 1 3 6 --sigma-y 0.2
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import tyro
from flax import nnx

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import jdiff  # noqa: E402
from jdiff import data, metrics  # noqa: E402
from jdiff.analytic import GaussianMixture  # noqa: E402
from jdiff.guidance import (  # noqa: E402
    Inpainting,
    NoiseConditionalClassifier,
    classifier_free,
    classifier_guidance,
    classifier_loss,
    dps,
    pigdm,
    projection,
)
from jdiff.loss import make_loss  # noqa: E402
from jdiff.nn import MLP, split_apply  # noqa: E402
from jdiff.process import VP  # noqa: E402
from jdiff.solvers import DDIM  # noqa: E402
from jdiff.timesteps import log_snr  # noqa: E402
from jdiff.train import train  # noqa: E402

INVERSE_METHODS = ("dps", "pigdm", "projection")


@dataclasses.dataclass(frozen=True)
class Config:
    """guidance_toy configuration (every field is a command-line flag)."""

    workdir: str = "runs/guidance_toy"
    """Run folder; re-running with the same folder resumes training."""
    steps: int = 4000
    """Training steps of the conditional diffusion model."""
    classifier_steps: int = 2000
    """Training steps of the noise-conditional classifier."""
    batch_size: int = 512
    hidden: tuple[int, ...] = (128, 128, 128)
    learning_rate: float = 2e-3
    ema_decay: float = 0.995
    cond_dropout: float = 0.15
    """Label-dropout probability (classifier-free guidance training)."""
    scales: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    """Classifier-free guidance scales s (s = 1 conditional, s = 0 unconditional)."""
    classifier_scales: tuple[float, ...] = (1.0, 4.0)
    """Classifier-guidance scales."""
    sample_steps: int = 50
    """DDIM steps (log-SNR grid ending at σ = 0)."""
    n_samples: int = 1500
    """Samples per scale (labels cycle through the classes)."""
    sigma_y: float = 0.2
    """Noise std of the inverse problem's measurement."""
    inverse_methods: tuple[str, ...] = INVERSE_METHODS
    inverse_steps: int = 100
    inverse_t_hi: float = 0.6
    """Inverse-problem guidance acts only for t <= inverse_t_hi (a guidance interval): near
    t_max, α ≈ 0 and x̂₀ = (x − σε̂)/α amplifies a learned network's errors by 1/α, which made
    the denoiser-gradient samplers diverge in trials (1.0 = guide everywhere)."""
    oracle_reference: bool = True
    """Also run the inverse-problem samplers on the exact mixture prior."""
    seed: int = 0
    smoke: bool = False
    """Tiny run that finishes in seconds (overrides steps, sizes and method lists)."""
    progress: bool = True


def smoke_config(cfg: Config) -> Config:
    """The seconds-long variant of `cfg`."""
    return dataclasses.replace(
        cfg,
        steps=400,
        classifier_steps=200,
        batch_size=256,
        hidden=(64, 64),
        scales=(0.0, 1.0, 4.0),
        classifier_scales=(4.0,),
        sample_steps=20,
        n_samples=300,
        inverse_methods=("pigdm",),
        inverse_steps=20,
        oracle_reference=False,
    )


def mixture() -> GaussianMixture:
    """The data: `jdiff.data.gaussian_mixture_2d()` (3 anisotropic components)."""
    return GaussianMixture(*(jnp.asarray(a) for a in data.gaussian_mixture_2d()))


def mixture_posterior(gm: GaussianMixture, A: np.ndarray, y: np.ndarray, sy: float):
    """Exact posterior of $x \\sim$ `gm` given $y = A x + \\sigma_y z$: a Gaussian mixture."""
    w, mus, covs = (np.asarray(a, np.float64) for a in (gm.weights, gm.means, gm.covs))
    logw, ms, ps = [], [], []
    for k in range(len(w)):
        s = A @ covs[k] @ A.T + sy**2 * np.eye(A.shape[0])
        gain = covs[k] @ A.T @ np.linalg.inv(s)
        r = y - A @ mus[k]
        ms.append(mus[k] + gain @ r)
        p = covs[k] - gain @ A @ covs[k]
        ps.append(0.5 * (p + p.T))
        _, logdet = np.linalg.slogdet(2 * np.pi * s)
        logw.append(np.log(w[k]) - 0.5 * (r @ np.linalg.solve(s, r) + logdet))
    logw = np.asarray(logw)
    post_w = np.exp(logw - logw.max())
    return GaussianMixture(
        jnp.asarray(post_w / post_w.sum(), jnp.float32),
        jnp.asarray(np.stack(ms), jnp.float32),
        jnp.asarray(np.stack(ps), jnp.float32),
    )


def _optimizer(cfg: Config, steps: int):
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, max(steps, 1), alpha=0.05)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


def train_model(cfg: Config, gm: GaussianMixture, process, key):
    """Class-conditional ε-model with label dropout; returns a `jdiff.Model` (EMA params)."""
    k = gm.num_components
    net = MLP(2, hidden=cfg.hidden, num_classes=k, rngs=nnx.Rngs(cfg.seed))
    apply_fn, params = split_apply(net)
    loss = make_loss(
        apply_fn, process, prediction="eps", cond_dropout=cfg.cond_dropout, num_classes=k
    )

    @jax.jit
    def batch_fn(data_key, step):
        x, labels = gm.sample_with_labels(jax.random.fold_in(data_key, step), cfg.batch_size)
        return {"x": x, "label": labels}

    state = train(
        loss,
        _optimizer(cfg, cfg.steps),
        params,
        batch_fn,
        num_steps=cfg.steps,
        key=key,
        workdir=os.path.join(cfg.workdir, "model"),
        ckpt_every=max(cfg.steps // 4, 10),
        log_every=max(cfg.steps // 20, 5),
        ema_decay=cfg.ema_decay,
        progress=cfg.progress,
    )
    return jdiff.Model(apply_fn, state.ema_params, process, "eps")


def train_classifier(cfg: Config, gm: GaussianMixture, process, key):
    """Noise-conditional classifier; returns `(apply_fn, params)` (EMA params)."""
    net = NoiseConditionalClassifier(
        2, gm.num_components, hidden=cfg.hidden[:2], rngs=nnx.Rngs(cfg.seed + 1)
    )
    apply_fn, params = split_apply(net)
    loss = classifier_loss(apply_fn, process)

    @jax.jit
    def batch_fn(data_key, step):
        x, labels = gm.sample_with_labels(jax.random.fold_in(data_key, step), cfg.batch_size)
        return {"x": x, "label": labels}

    steps = cfg.classifier_steps
    state = train(
        loss,
        _optimizer(cfg, steps),
        params,
        batch_fn,
        num_steps=steps,
        key=key,
        workdir=os.path.join(cfg.workdir, "classifier"),
        ckpt_every=max(steps // 4, 10),
        log_every=max(steps // 20, 5),
        ema_decay=cfg.ema_decay,
        progress=cfg.progress,
    )
    return apply_fn, state.ema_params


def class_metrics(gm, x, labels, key):
    """Accuracy under the exact data posterior p(c | x), mean p(c | x), and energy distance per
    class to exact class-conditional samples (averaged over classes)."""
    post = gm.class_posterior(x, 0.0, VP())  # t = 0: α = 1, σ = 0 — the data posterior
    acc = float(jnp.mean(jnp.argmax(post, -1) == labels))
    p_req = float(jnp.mean(jnp.take_along_axis(post, labels[:, None], -1)))
    eds = []
    for c in range(gm.num_components):
        xc = x[labels == c]
        ref = gm.component(c).sample(jax.random.fold_in(key, c), int(xc.shape[0]))
        eds.append(float(metrics.energy_distance(xc, ref)))
    return {
        "accuracy": acc,
        "p_requested": p_req,
        "energy_distance": float(np.mean(eds)),
        "finite": bool(jnp.all(jnp.isfinite(x))),
    }


def guidance_runs(cfg, gm, model, clf, process, key):
    """CFG at every scale and classifier guidance; returns (rows, samples)."""
    n = cfg.n_samples
    k_noise, k_eval = jax.random.split(key)
    labels = jnp.arange(n, dtype=jnp.int32) % gm.num_components
    x_T = process.prior_sample(k_noise, (n, 2))
    ts = log_snr(process, cfg.sample_steps, end_at_zero=True)
    rows, samples = [], {}
    for s in cfg.scales:
        sol = jdiff.solve(
            classifier_free(model, s, null_label=gm.num_components), DDIM(), x_T, ts, cond=labels
        )
        rows.append(
            {
                "method": "cfg",
                "scale": s,
                "nfe": int(sol.nfe),
                **class_metrics(gm, sol.samples, labels, k_eval),
            }
        )
        samples[f"CFG s={s:g}"] = np.asarray(sol.samples)
    for s in cfg.classifier_scales:
        guided = classifier_guidance(model, *clf, s, labels)  # inner model gets cond=None (∅)
        sol = jdiff.solve(guided, DDIM(), x_T, ts)
        rows.append(
            {
                "method": "classifier",
                "scale": s,
                "nfe": int(sol.nfe),
                **class_metrics(gm, sol.samples, labels, k_eval),
            }
        )
        samples[f"CG s={s:g}"] = np.asarray(sol.samples)
    return rows, samples, np.asarray(labels)


def _inverse_model(method, prior, op, y, sy, sigma_data, t_hi):
    interval = (0.0, t_hi)
    if method == "dps":
        return dps(prior, op, y, sy, interval=interval)
    if method == "pigdm":
        return pigdm(prior, op, y, sy, sigma_data=sigma_data, interval=interval)
    if method == "projection":
        return projection(prior, op, y, sy, interval=interval)
    raise ValueError(f"unknown inverse method {method!r}; valid choices: {list(INVERSE_METHODS)}")


def inverse_runs(cfg, gm, model, process, key):
    """Inpainting-style problem: observe x[0]; compare posterior samplers with exact samples."""
    k_x, k_y, k_noise, k_ref = jax.random.split(key, 4)
    x_true = gm.sample(k_x, 1)
    op = Inpainting(jnp.array([1.0, 0.0]))
    y = op.observe(k_y, x_true, cfg.sigma_y)[0]
    post = mixture_posterior(gm, np.array([[1.0, 0.0]]), np.asarray(y[:1]), cfg.sigma_y)
    n = cfg.n_samples
    exact = post.sample(k_ref, n)
    x_T = process.prior_sample(k_noise, (n, 2))
    ts = log_snr(process, cfg.inverse_steps, end_at_zero=True)
    sigma_data = float(jnp.sqrt(jnp.trace(gm.covariance()) / 2))
    # the learned prior is the network's unconditional output (cond=None → null label)
    priors = {"learned": model}
    if cfg.oracle_reference:
        priors["exact prior"] = gm.model(process, "eps")
    rows, samples = [], {"exact posterior": np.asarray(exact)}
    post_mean = np.asarray(post.mean())
    for prior_name, prior in priors.items():
        for method in cfg.inverse_methods:
            guided = _inverse_model(method, prior, op, y, cfg.sigma_y, sigma_data, cfg.inverse_t_hi)
            sol = jdiff.solve(guided, DDIM(), x_T, ts)
            x = sol.samples
            finite = bool(jnp.all(jnp.isfinite(x)))
            rows.append(
                {
                    "prior": prior_name,
                    "method": method,
                    "nfe": int(sol.nfe),
                    "energy_distance": float(metrics.energy_distance(x, exact)) if finite else None,
                    "mean_error": float(np.linalg.norm(np.asarray(x).mean(0) - post_mean)),
                    "obs_residual_rms": float(jnp.sqrt(jnp.mean((x[:, 0] - y[0]) ** 2))),
                    "finite": finite,
                }
            )
            samples[f"{method} ({prior_name})"] = np.asarray(x)
    info = {
        "y": float(y[0]),
        "x_true": np.asarray(x_true[0]).tolist(),
        "posterior_mean": post_mean.tolist(),
        "exact_obs_residual_rms": float(jnp.sqrt(jnp.mean((exact[:, 0] - y[0]) ** 2))),
    }
    return rows, samples, info


def plot_guidance(path, gm, samples, labels, key):
    ref, ref_labels = gm.sample_with_labels(key, 1500)
    panels = [("data", np.asarray(ref), np.asarray(ref_labels))] + [
        (name, x, labels) for name, x in samples.items()
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8))
    for ax, (name, x, lab) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1, c=lab, cmap="viridis", vmin=0, vmax=2)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-2.5, 3)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_inverse(path, samples, info):
    fig, axes = plt.subplots(1, len(samples), figsize=(2.6 * len(samples), 2.8))
    for ax, (name, x) in zip(np.atleast_1d(axes), samples.items(), strict=True):
        ax.scatter(x[:, 0], x[:, 1], s=1)
        ax.axvline(info["y"], color="r", lw=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-2.5, 3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(cfg: Config) -> dict:
    """Run the experiment; returns the metrics dict (also written to `workdir/metrics.json`)."""
    if cfg.smoke:
        cfg = smoke_config(cfg)
    for m in cfg.inverse_methods:
        if m not in INVERSE_METHODS:
            raise ValueError(
                f"unknown inverse method {m!r}; valid choices: {list(INVERSE_METHODS)}"
            )
    os.makedirs(cfg.workdir, exist_ok=True)
    with open(os.path.join(cfg.workdir, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(cfg), f, indent=1)
    t0 = time.perf_counter()
    key = jax.random.key(cfg.seed)
    k_model, k_clf, k_guid, k_inv, k_plot = jax.random.split(key, 5)
    gm = mixture()
    process = VP()
    model = train_model(cfg, gm, process, k_model)
    clf = train_classifier(cfg, gm, process, k_clf)
    g_rows, g_samples, labels = guidance_runs(cfg, gm, model, clf, process, k_guid)
    i_rows, i_samples, info = inverse_runs(cfg, gm, model, process, k_inv)
    out = {
        "guidance": g_rows,
        "inverse": i_rows,
        "inverse_problem": info,
        "seconds": time.perf_counter() - t0,
    }
    with open(os.path.join(cfg.workdir, "metrics.json"), "w") as f:
        json.dump(out, f, indent=1)
    plot_guidance(os.path.join(cfg.workdir, "scatter_guidance.png"), gm, g_samples, labels, k_plot)
    plot_inverse(os.path.join(cfg.workdir, "inverse.png"), i_samples, info)
    for r in g_rows:
        print(
            f"{r['method']:10s} s={r['scale']:<4g} NFE={r['nfe']:4d} acc={r['accuracy']:.3f} "
            f"p(c|x)={r['p_requested']:.3f} energy={r['energy_distance']:.4f}"
        )
    for r in i_rows:
        print(
            f"inverse {r['method']:10s} ({r['prior']}) energy={r['energy_distance']} "
            f"mean err={r['mean_error']:.3f} obs rms={r['obs_residual_rms']:.3f}"
        )
    print(f"done in {out['seconds']:.1f}s → {cfg.workdir}")
    return out


if __name__ == "__main__":
    main(tyro.cli(Config))
