"""Main job: train a flow-matching model and a VP ε-model on 2-D data, then compare samplers.

Two models share one MLP architecture:

* ``fm``: Linear path (α = 1 − t, σ = t), velocity prediction (flow matching / rectified flow);
* ``vp``: VP SDE (β ∈ [0.1, 20]), ε prediction (DDPM / score SDE).

Each is sampled with Euler, Heun and DDIM at NFE from 5 to 100 from the same noise. For every
(model, solver, NFE) the run records the distribution error against fresh data (energy distance,
sliced W2, and, on the Gaussian-mixture dataset, the exact mean NLL of the samples) and the
solver error against an adaptive reference solution of the same learned ODE from the same noise.

Outputs in ``--workdir`` (default ``runs/toy2d``): ``metrics.json``, ``config.json``,
``scatter_fm.png``, ``scatter_vp.png``, ``error_vs_nfe.png``, and per model a ``<model>/``
folder with ``metrics.jsonl`` and orbax checkpoints. Re-running the same command resumes
training from the last checkpoint.

    python experiments/toy2d.py               # a few minutes on 2 CPU cores
    python experiments/toy2d.py --smoke       # seconds
    python experiments/toy2d.py --dataset two-moons --steps 6000
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import diffrax
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
from jdiff import data, metrics, timesteps  # noqa: E402
from jdiff.loss import make_loss  # noqa: E402
from jdiff.nn import MLP, split_apply  # noqa: E402
from jdiff.process import VP, Linear  # noqa: E402
from jdiff.solvers import DDIM, Diffrax, Euler, Heun  # noqa: E402
from jdiff.train import train  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Config:
    """toy2d experiment configuration (every field is a command-line flag)."""

    dataset: str = "gaussian_mixture"
    """2-D data set: gaussian_mixture (exact NLL available), two_moons, swiss_roll,
    checkerboard, eight_gaussians."""
    workdir: str = "runs/toy2d"
    """Run folder; re-running with the same folder resumes training."""
    steps: int = 3000
    """Training steps per model."""
    batch_size: int = 512
    hidden: tuple[int, ...] = (256, 256, 256)
    learning_rate: float = 2e-3
    ema_decay: float = 0.995
    nfes: tuple[int, ...] = (5, 10, 20, 50, 100)
    """Target network evaluations per sample (Heun takes NFE/2 steps of 2 evaluations)."""
    n_samples: int = 2000
    grids: tuple[str, str] = ("uniform", "log_snr")
    """Time grid for the fm and the vp model (from t_max to t_min)."""
    seed: int = 0
    smoke: bool = False
    """Tiny run that finishes in seconds (overrides steps, sizes and NFEs)."""
    progress: bool = True


def smoke_config(cfg: Config) -> Config:
    """The seconds-long variant of `cfg`."""
    return dataclasses.replace(
        cfg, steps=60, batch_size=128, hidden=(64, 64), nfes=(5, 10), n_samples=256
    )


MODELS = {"fm": (Linear, "velocity"), "vp": (VP, "eps")}
SOLVERS = {"euler": Euler, "heun": Heun, "ddim": DDIM}


def train_model(cfg: Config, name: str, key):
    """Train one model; returns a `jdiff.Model` holding the EMA params."""
    process_cls, prediction = MODELS[name]
    process = process_cls()
    net = MLP(2, hidden=cfg.hidden, rngs=nnx.Rngs(cfg.seed))
    apply_fn, params = split_apply(net)
    loss = make_loss(apply_fn, process, prediction=prediction)
    sampler = data.get_dataset(cfg.dataset)

    @jax.jit
    def batch_fn(data_key, step):
        return sampler(jax.random.fold_in(data_key, step), cfg.batch_size)

    schedule = optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps, alpha=0.05)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    state = train(
        loss,
        optimizer,
        params,
        batch_fn,
        num_steps=cfg.steps,
        key=key,
        workdir=os.path.join(cfg.workdir, name),
        ckpt_every=max(cfg.steps // 5, 10),
        log_every=max(cfg.steps // 30, 5),
        ema_decay=cfg.ema_decay,
        progress=cfg.progress,
    )
    return jdiff.Model(apply_fn, state.ema_params, process, prediction)


def n_steps_for(solver: str, nfe: int) -> int:
    """Steps giving `nfe` network evaluations (Heun: 2 per step)."""
    return max(nfe // 2, 1) if solver == "heun" else nfe


def evaluate(cfg: Config, name: str, model, key):
    """Sample with every solver × NFE; return metrics rows and samples for plotting."""
    k_noise, k_data, k_sw = jax.random.split(key, 3)
    x_T = model.process.prior_sample(k_noise, (cfg.n_samples, 2))
    ref_data = data.get_dataset(cfg.dataset)(k_data, cfg.n_samples)
    grid = timesteps.get_grid(cfg.grids[0] if name == "fm" else cfg.grids[1])
    # adaptive reference of the learned PF-ODE, from the same noise, to the same end point
    ref_ts = jnp.asarray([model.process.t_max, model.process.t_min])
    reference = jdiff.sample(model, Diffrax(diffrax.Tsit5(), rtol=1e-6, atol=1e-6), x_T, ref_ts)
    mixture = data.gaussian_mixture_2d() if cfg.dataset == "gaussian_mixture" else None
    rows, samples = [], {}
    for solver_name, solver_cls in SOLVERS.items():
        for nfe in cfg.nfes:
            n = n_steps_for(solver_name, nfe)
            ts = grid(model.process, n)
            t0 = time.perf_counter()
            sol = jdiff.solve(model, solver_cls(), x_T, ts)
            x = jax.block_until_ready(sol.samples)
            row = {
                "model": name,
                "solver": solver_name,
                "nfe": int(sol.nfe),
                "steps": n,
                "seconds": time.perf_counter() - t0,
                "energy_distance": float(metrics.energy_distance(x, ref_data)),
                "sliced_w2": float(metrics.sliced_wasserstein(k_sw, x, ref_data)),
                "solver_rmse": float(jnp.sqrt(jnp.mean((x - reference) ** 2))),
                "finite": bool(jnp.all(jnp.isfinite(x))),
            }
            if mixture is not None:
                row["sample_nll"] = float(metrics.gaussian_mixture_nll(x, *mixture))
            rows.append(row)
            samples[(solver_name, nfe)] = np.asarray(x)
    return rows, samples, np.asarray(ref_data)


def plot_scatter(path, name, samples, ref, cfg):
    solvers = list(SOLVERS)
    fig, axes = plt.subplots(
        len(solvers), len(cfg.nfes) + 1, figsize=(2.2 * (len(cfg.nfes) + 1), 2.2 * len(solvers))
    )
    for i, s in enumerate(solvers):
        axes[i, 0].scatter(ref[:, 0], ref[:, 1], s=1, c="k")
        axes[i, 0].set_title("data", fontsize=8)
        for j, nfe in enumerate(cfg.nfes):
            x = samples[(s, nfe)]
            axes[i, j + 1].scatter(x[:, 0], x[:, 1], s=1)
            axes[i, j + 1].set_title(f"{name} {s} NFE≈{nfe}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_errors(path, rows, baseline):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in MODELS:
        for s in SOLVERS:
            r = [row for row in rows if row["model"] == name and row["solver"] == s]
            nfe = [row["nfe"] for row in r]
            axes[0].loglog(nfe, [row["solver_rmse"] for row in r], "o-", label=f"{name}/{s}")
            axes[1].semilogx(nfe, [row["energy_distance"] for row in r], "o-", label=f"{name}/{s}")
    axes[1].axhline(baseline, color="k", ls="--", label="data vs data")
    axes[0].set(xlabel="NFE", ylabel="RMSE vs adaptive reference", title="solver error")
    axes[1].set(xlabel="NFE", ylabel="energy distance to data", title="sample quality")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(cfg: Config) -> dict:
    """Run the experiment; returns the metrics dictionary written to ``metrics.json``."""
    if cfg.smoke:
        cfg = smoke_config(cfg)
    data.get_dataset(cfg.dataset)  # validate early
    workdir = Path(cfg.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    key = jax.random.key(cfg.seed)
    rows = []
    t_start = time.perf_counter()
    for i, name in enumerate(MODELS):
        k_train, k_eval = jax.random.split(jax.random.fold_in(key, i))
        model = train_model(cfg, name, k_train)
        r, samples, ref = evaluate(cfg, name, model, k_eval)
        rows += r
        plot_scatter(workdir / f"scatter_{name}.png", name, samples, ref, cfg)
    sampler = data.get_dataset(cfg.dataset)
    baseline = float(
        metrics.energy_distance(
            sampler(jax.random.key(10_001), cfg.n_samples),
            sampler(jax.random.key(10_002), cfg.n_samples),
        )
    )
    plot_errors(workdir / "error_vs_nfe.png", rows, baseline)
    out = {
        "config": dataclasses.asdict(cfg),
        "results": rows,
        "data_vs_data_energy_distance": baseline,
        "seconds": time.perf_counter() - t_start,
        "jax_backend": jax.default_backend(),
        "jax_version": jax.__version__,
    }
    if cfg.dataset == "gaussian_mixture":
        out["data_nll"] = float(
            metrics.gaussian_mixture_nll(
                sampler(jax.random.key(10_003), 20_000), *data.gaussian_mixture_2d()
            )
        )
    (workdir / "metrics.json").write_text(json.dumps(out, indent=2))
    best = min(rows, key=lambda r: r["energy_distance"])
    print(
        f"wrote {workdir}/metrics.json; best: {best['model']}/{best['solver']} at NFE "
        f"{best['nfe']}: energy distance {best['energy_distance']:.4f} "
        f"(data vs data {baseline:.4f})"
    )
    return out


if __name__ == "__main__":
    main(tyro.cli(Config))
