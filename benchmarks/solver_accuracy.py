"""Solver accuracy versus NFE on exact Gaussian-mixture models (issue 3).

For each mixture (2-D, and 8-D with full covariances; `jdiff.analytic.GaussianMixture`) and each
process (VP with an ε-model, EDM with a denoiser, Linear with a velocity model — all exact, so the
only error is the solver's), every registered solver (`benchmarks/_registry.py`) × NFE budget ×
time grid (uniform, log-SNR, Karras ρ = 7, quadratic) samples the same noise x_T drawn exactly
from the marginal at `t_start`, and we measure

* **RMSE** of the final sample against a tight float64 adaptive reference solution of the PF-ODE
  from the same x_T (`jdiff.solvers.Diffrax(diffrax.Dopri8(), rtol=atol=1e-10)`), deterministic
  solvers only;
* **energy distance** (`jdiff.metrics.energy_distance`) between the final samples and exact
  samples of the marginal at `t_end` (every solver, stochastic ones included; its sampling noise
  floor is reported as the reference solution's own energy distance);
* the **observed order**: minus the slope of log RMSE against log NFE over the largest NFEs;
* a **learned grid** (`jdiff.timesteps_optimize.optimize`, trained on separate noise) against the
  best hand-designed grid at 10 NFE, evaluated on the benchmark noise.

A solver with k NFE per step gets ⌊NFE/k⌋ steps; tables report the NFE the solve counted. Grids
run from `t_start` (t_max; 1 − 1e-3 for Linear, where λ(1) = −∞) to `t_end` = `process.t_min`.

    python benchmarks/solver_accuracy.py                 # full sweep (float64)
    python benchmarks/solver_accuracy.py --quick         # seconds-long smoke run
    python benchmarks/solver_accuracy.py --solvers DDIM Heun --processes vp --nfes 5 10 20

Writes `solver_accuracy.{json,md,png}` into `benchmarks/results/` (or `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffrax  # noqa: E402
import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jdiff  # noqa: E402
from benchmarks import _registry  # noqa: E402
from benchmarks._common import (  # noqa: E402
    environment,
    fmt,
    markdown_table,
    results_path,
    write_json,
    write_markdown,
)
from jdiff.analytic import GaussianMixture  # noqa: E402
from jdiff.metrics import energy_distance  # noqa: E402
from jdiff.timesteps_optimize import optimize  # noqa: E402

NFES = (3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)
GRIDS = ("uniform", "log_snr", "karras", "quadratic")
PROCESSES = {
    # name: (constructor, prediction of the exact model, t_start or None for t_max)
    "vp": (lambda: jdiff.process.VP(), "eps", None),
    "edm": (lambda: jdiff.process.EDM(), "x0", None),
    "linear": (lambda: jdiff.process.Linear(), "velocity", 1.0 - 1e-3),
}
MIXTURES = ("gmm2d", "gmm8d")
REFERENCES = {"dopri8": diffrax.Dopri8, "tsit5": diffrax.Tsit5}
LEARN_SOLVERS = ("DPMSolverPP-2M", "DDIM")


@dataclasses.dataclass
class Config:
    """Benchmark settings (see `--help`)."""

    solvers: list[str] | None = None
    processes: list[str] = dataclasses.field(default_factory=lambda: list(PROCESSES))
    mixtures: list[str] = dataclasses.field(default_factory=lambda: list(MIXTURES))
    nfes: list[int] = dataclasses.field(default_factory=lambda: list(NFES))
    grids: list[str] = dataclasses.field(default_factory=lambda: list(GRIDS))
    batch: int = 128
    n_exact: int = 1024
    learn: bool = True
    learn_iters: int = 150
    learn_batch: int = 128
    order_points: int = 4
    reference: str = "dopri8"
    reference_tol: float = 1e-10
    seed: int = 0
    out: str | None = None
    quick: bool = False


def make_mixture(name: str) -> GaussianMixture:
    """The benchmark mixtures (float64; build inside `jax.enable_x64(True)`).

    `gmm2d`: 3 components in 2-D with correlated covariances. `gmm8d`: 4 components in 8-D with
    random full covariances (eigenvalues in [0.05, 0.5]) and means of norm ≈ 2.
    """
    if name == "gmm2d":
        means = np.array([[-1.5, 0.5], [1.0, 1.0], [0.5, -1.2]])
        covs = np.array(
            [[[0.10, 0.05], [0.05, 0.08]], [[0.2, -0.1], [-0.1, 0.15]], [[0.05, 0.0], [0.0, 0.3]]]
        )
        weights = np.array([0.3, 0.45, 0.25])
    elif name == "gmm8d":
        rng = np.random.default_rng(8)
        k, d = 4, 8
        means = rng.normal(size=(k, d))
        means = 2.0 * means / np.linalg.norm(means, axis=1, keepdims=True)
        q = np.linalg.qr(rng.normal(size=(k, d, d)))[0]
        ev = rng.uniform(0.05, 0.5, size=(k, d))
        covs = np.einsum("kij,kj,klj->kil", q, ev, q)
        weights = np.array([0.1, 0.2, 0.3, 0.4])
    else:
        raise ValueError(f"unknown mixture {name!r}; valid choices: {list(MIXTURES)}")
    return GaussianMixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs))


def make_grids(process, steps: int, names, t_start) -> jnp.ndarray:
    """`[G, steps + 1]` stacked grids (all from `t_start` to `process.t_min`)."""
    kw = {} if t_start is None else {"t_start": t_start}
    return jnp.stack([jdiff.timesteps.get_grid(g)(process, steps, **kw) for g in names])


@eqx.filter_jit
def _solve_grids(model, solver, x_T, grids, key):
    """Samples `[G, B, D]` and NFE `[G]` of one solver on G grids of one length (one program)."""

    def one(ts):
        sol = jdiff.solve(model, solver, x_T, ts, key=key)
        return sol.samples, sol.nfe

    return jax.vmap(one)(grids)


_energy = jax.jit(energy_distance)


def observed_order(nfes, errs, points: int, floor: float = 1e-9) -> float | None:
    """Minus the least-squares slope of log(err) vs log(NFE) over the `points` largest NFEs
    with err above `floor` (the reference solution's accuracy); None with fewer than 2."""
    pairs = sorted(
        (n, e) for n, e in zip(nfes, errs, strict=True) if e is not None and e > floor and n > 0
    )
    pairs = pairs[-points:]
    if len(pairs) < 2 or len({n for n, _ in pairs}) < 2:
        return None
    x = np.log([n for n, _ in pairs])
    y = np.log([e for _, e in pairs])
    return float(-np.polyfit(x, y, 1)[0])


def run_combo(mix_name: str, proc_name: str, solvers: dict, cfg: Config, log) -> dict:
    """All solvers × NFEs × grids on one (mixture, process); returns records and extras."""
    make_proc, prediction, t_start = PROCESSES[proc_name]
    process = make_proc()
    mixture = make_mixture(mix_name)
    model = mixture.model(process, prediction)
    t0 = process.t_max if t_start is None else t_start
    t1 = process.t_min
    k_x, k_e, k_s, k_n, k_l = jax.random.split(jax.random.key(cfg.seed), 5)
    x_T, _ = process.perturb(k_n, mixture.sample(k_x, cfg.batch), jnp.asarray(t0))
    exact, _ = process.perturb(k_s, mixture.sample(k_e, cfg.n_exact), jnp.asarray(t1))
    tic = time.perf_counter()
    ref_solver = REFERENCES[cfg.reference]()
    tol = cfg.reference_tol
    ref_sol = jdiff.solve(
        model,
        jdiff.solvers.Diffrax(ref_solver, rtol=tol, atol=tol, max_steps=65536),
        x_T,
        jnp.asarray([t0, t1]),
    )
    ref = ref_sol.samples
    ref_energy = float(_energy(ref, exact))
    log(
        f"[{mix_name}/{proc_name}] reference: {int(ref_sol.nfe)} NFE, {time.perf_counter() - tic:.1f}s, energy floor {ref_energy:.2e}"
    )

    records = []
    for name, (entry, solver) in solvers.items():
        stochastic = bool(getattr(solver, "stochastic", False))
        done = {}
        tic = time.perf_counter()
        for budget in cfg.nfes:
            steps = budget // entry.nfe_per_step
            if steps < 1:
                continue
            if steps not in done:
                grids = make_grids(process, steps, cfg.grids, t_start)
                key = (
                    jax.random.fold_in(jax.random.key(cfg.seed + 1), steps) if stochastic else None
                )
                samples, nfe = _solve_grids(model, solver, x_T, grids, key)
                samples, nfe = np.asarray(samples), np.asarray(nfe)
                res = []
                for g, grid in enumerate(cfg.grids):
                    finite = bool(np.all(np.isfinite(samples[g])))
                    rmse = None if stochastic else float(np.sqrt(np.mean((samples[g] - ref) ** 2)))
                    energy = float(_energy(jnp.asarray(samples[g]), exact)) if finite else None
                    res.append((grid, int(nfe[g]), rmse if finite else math.inf, energy, finite))
                done[steps] = res
            for grid, nfe_g, rmse, energy, finite in done[steps]:
                records.append(
                    dict(
                        mixture=mix_name,
                        process=proc_name,
                        solver=name,
                        grid=grid,
                        nfe_budget=budget,
                        steps=steps,
                        nfe=nfe_g,
                        rmse=rmse,
                        energy=energy,
                        finite=finite,
                        stochastic=stochastic,
                    )
                )
        log(f"[{mix_name}/{proc_name}] {name}: {time.perf_counter() - tic:.1f}s")

    learned = []
    if cfg.learn:
        for name in LEARN_SOLVERS:
            if name not in solvers or 10 not in cfg.nfes:
                continue
            entry, solver = solvers[name]
            at10 = [r for r in records if r["solver"] == name and r["nfe_budget"] == 10]
            best = min(at10, key=lambda r: r["rmse"])
            steps = best["steps"]
            tic = time.perf_counter()
            ts, info = optimize(
                model,
                solver,
                steps,
                key=k_l,
                batch=cfg.learn_batch,
                data_shape=(mixture.dim,),
                init=best["grid"],
                t_start=t_start,
                n_iters=cfg.learn_iters,
                return_info=True,
            )
            test = jdiff.solve(model, solver, x_T, ts)
            rmse = float(jnp.sqrt(jnp.mean((test.samples - ref) ** 2)))
            learned.append(
                dict(
                    mixture=mix_name,
                    process=proc_name,
                    solver=name,
                    steps=steps,
                    nfe=int(test.nfe),
                    init_grid=best["grid"],
                    init_rmse=best["rmse"],
                    learned_rmse=rmse,
                    improvement=best["rmse"] / rmse,
                    train_mse_init=info.init_loss,
                    train_mse_learned=info.best_loss,
                    grid=np.asarray(ts).tolist(),
                    seconds=time.perf_counter() - tic,
                )
            )
            log(
                f"[{mix_name}/{proc_name}] learned grid for {name}: RMSE {best['rmse']:.3e} ({best['grid']}) -> {rmse:.3e}"
            )
    return dict(
        records=records,
        learned=learned,
        reference=dict(
            mixture=mix_name,
            process=proc_name,
            nfe=int(ref_sol.nfe),
            energy_floor=ref_energy,
            t_start=float(t0),
            t_end=float(t1),
            prediction=prediction,
        ),
    )


def summarise(records, cfg: Config) -> dict:
    """Observed orders and the most accurate solver + grid at 10 NFE."""
    orders = []
    keys = sorted(
        {
            (r["mixture"], r["process"], r["solver"], r["grid"])
            for r in records
            if not r["stochastic"]
        }
    )
    for mix, proc, sol, grid in keys:
        rs = [
            r
            for r in records
            if (r["mixture"], r["process"], r["solver"], r["grid"]) == (mix, proc, sol, grid)
        ]
        seen = {}
        for r in rs:
            seen[r["nfe"]] = r["rmse"]
        order = observed_order(list(seen), list(seen.values()), cfg.order_points)
        orders.append(dict(mixture=mix, process=proc, solver=sol, grid=grid, order=order))
    best10 = []
    for mix in cfg.mixtures:
        for proc in cfg.processes:
            at10 = [
                r
                for r in records
                if r["mixture"] == mix
                and r["process"] == proc
                and r["nfe_budget"] == 10
                and not r["stochastic"]
                and r["finite"]
            ]
            if at10:
                b = min(at10, key=lambda r: r["rmse"])
                best10.append(
                    dict(
                        mixture=mix,
                        process=proc,
                        solver=b["solver"],
                        grid=b["grid"],
                        nfe=b["nfe"],
                        rmse=b["rmse"],
                    )
                )
    # overall: geometric mean RMSE over the (mixture, process) pairs at 10 NFE
    overall = {}
    for r in records:
        if r["nfe_budget"] == 10 and not r["stochastic"]:
            overall.setdefault((r["solver"], r["grid"]), []).append(r["rmse"])
    n_pairs = len(cfg.mixtures) * len(cfg.processes)
    ranking = sorted(
        (
            dict(solver=s, grid=g, geo_mean_rmse=float(np.exp(np.mean(np.log(v)))))
            for (s, g), v in overall.items()
            if len(v) == n_pairs and all(np.isfinite(v))
        ),
        key=lambda d: d["geo_mean_rmse"],
    )
    return dict(orders=orders, best_at_10=best10, ranking_at_10=ranking)


def _markdown(result, cfg: Config, path: Path):
    recs, summ = result["records"], result["summary"]
    sections = []
    sections.append(
        (
            "Setup",
            "Exact Gaussian-mixture models (`jdiff.analytic.GaussianMixture`); x_T drawn exactly from "
            "the marginal at t_start; error = RMSE of the final sample against "
            f"`Diffrax({cfg.reference}, rtol=atol={cfg.reference_tol:g})` from the same x_T (float64); energy distance against "
            f"{cfg.n_exact} exact samples of the marginal at t_end; batch {cfg.batch}. A solver with k "
            "NFE/step gets ⌊NFE/k⌋ steps; `nfe` is what the solve counted. Observed order: −slope of "
            f"log RMSE vs log NFE over the {cfg.order_points} largest NFEs (errors above 1e-9).\n\n"
            + markdown_table(
                [
                    "mixture",
                    "process",
                    "prediction",
                    "t_start",
                    "t_end",
                    "reference NFE",
                    "energy floor",
                ],
                [
                    [
                        r["mixture"],
                        r["process"],
                        r["prediction"],
                        r["t_start"],
                        r["t_end"],
                        r["nfe"],
                        r["energy_floor"],
                    ]
                    for r in result["references"]
                ],
            )
            + (
                "\n\nUnavailable solvers: "
                + "; ".join(f"{k} ({v})" for k, v in result["unavailable"].items())
                if result["unavailable"]
                else ""
            ),
        )
    )
    if summ["best_at_10"]:
        body = markdown_table(
            ["mixture", "process", "solver", "grid", "NFE", "RMSE"],
            [
                [b["mixture"], b["process"], b["solver"], b["grid"], b["nfe"], b["rmse"]]
                for b in summ["best_at_10"]
            ],
        )
        if summ["ranking_at_10"]:
            body += "\n\nRanking over all (mixture, process) pairs (geometric-mean RMSE at 10 NFE, top 12):\n\n"
            body += markdown_table(
                ["rank", "solver", "grid", "geo-mean RMSE"],
                [
                    [i + 1, d["solver"], d["grid"], d["geo_mean_rmse"]]
                    for i, d in enumerate(summ["ranking_at_10"][:12])
                ],
            )
        sections.append(("Most accurate at 10 NFE", body))
    if result["learned"]:
        sections.append(
            (
                "Learned grid (`optimize`) vs the best hand-designed grid at 10 NFE",
                "Trained on separate noise (`optimize`, Adam, MSE of the final sample against the "
                "Dopri8 reference), initialised at the best hand-designed grid, evaluated on the "
                "benchmark noise.\n\n"
                + markdown_table(
                    [
                        "mixture",
                        "process",
                        "solver",
                        "NFE",
                        "best hand grid",
                        "its RMSE",
                        "learned RMSE",
                        "ratio",
                    ],
                    [
                        [
                            d["mixture"],
                            d["process"],
                            d["solver"],
                            d["nfe"],
                            d["init_grid"],
                            d["init_rmse"],
                            d["learned_rmse"],
                            d["improvement"],
                        ]
                        for d in result["learned"]
                    ],
                ),
            )
        )
    solvers = list(dict.fromkeys(r["solver"] for r in recs if not r["stochastic"]))
    entries = {e.name: e for e in _registry.ENTRIES}
    pairs = [(m, p) for m in cfg.mixtures for p in cfg.processes]
    for grid in cfg.grids:
        rows = []
        for s in solvers:
            row = [s, fmt(entries[s].order) if entries[s].order is not None else "—"]
            for m, p in pairs:
                o = [
                    d["order"]
                    for d in summ["orders"]
                    if (d["mixture"], d["process"], d["solver"], d["grid"]) == (m, p, s, grid)
                ]
                row.append(fmt(o[0], 2) if o and o[0] is not None else "—")
            rows.append(row)
        sections.append(
            (
                f"Observed order ({grid} grid)",
                markdown_table(["solver", "expected", *[f"{m}/{p}" for m, p in pairs]], rows),
            )
        )
    nfes = sorted(set(cfg.nfes))
    for m, p in pairs:
        rows = []
        for s in solvers:
            for g in cfg.grids:
                rs = {
                    r["nfe_budget"]: r
                    for r in recs
                    if (r["mixture"], r["process"], r["solver"], r["grid"]) == (m, p, s, g)
                }
                rows.append(
                    [
                        s,
                        g,
                        *[
                            (f"{fmt(rs[n]['rmse'])} ({rs[n]['nfe']})" if n in rs else "—")
                            for n in nfes
                        ],
                    ]
                )
        sections.append(
            (
                f"RMSE vs NFE budget — {m}, {p} (actual NFE in parentheses)",
                markdown_table(["solver", "grid", *map(str, nfes)], rows),
            )
        )
    stoch = list(dict.fromkeys(r["solver"] for r in recs if r["stochastic"]))
    for m, p in pairs:
        rows = []
        for s in list(solvers) + stoch:
            rs = {
                r["nfe_budget"]: r
                for r in recs
                if (r["mixture"], r["process"], r["solver"], r["grid"])
                == (m, p, s, "log_snr" if "log_snr" in cfg.grids else cfg.grids[0])
            }
            rows.append([s, *[fmt(rs[n]["energy"]) if n in rs else "—" for n in nfes]])
        sections.append(
            (
                f"Energy distance to exact samples vs NFE budget — {m}, {p} ({'log_snr' if 'log_snr' in cfg.grids else cfg.grids[0]} grid)",
                markdown_table(["solver", *map(str, nfes)], rows),
            )
        )
    write_markdown(
        path, "Solver accuracy vs NFE (exact Gaussian mixtures)", result["environment"], sections
    )


def _plot(result, cfg: Config, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in result["records"] if not r["stochastic"]]
    pairs = [(m, p) for m in cfg.mixtures for p in cfg.processes]
    solvers = list(dict.fromkeys(r["solver"] for r in recs))
    fig, axes = plt.subplots(
        len(pairs), len(cfg.grids), figsize=(4 * len(cfg.grids), 3.2 * len(pairs)), squeeze=False
    )
    cmap = plt.get_cmap("tab20")
    for i, (m, p) in enumerate(pairs):
        for j, g in enumerate(cfg.grids):
            ax = axes[i][j]
            for c, s in enumerate(solvers):
                rs = sorted(
                    (r["nfe"], r["rmse"])
                    for r in recs
                    if (r["mixture"], r["process"], r["solver"], r["grid"]) == (m, p, s, g)
                    and r["finite"]
                )
                if rs:
                    ax.loglog(*zip(*rs, strict=True), "o-", ms=3, lw=1, color=cmap(c % 20), label=s)
            ax.set_title(f"{m} / {p} / {g}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            if i == len(pairs) - 1:
                ax.set_xlabel("NFE")
            if j == 0:
                ax.set_ylabel("RMSE vs reference")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.12 / max(len(pairs), 1)))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(cfg: Config, log=print) -> dict:
    """Run the benchmark and write JSON, Markdown and PNG; returns the result dict."""
    bad = [p for p in cfg.processes if p not in PROCESSES]
    if bad:
        raise ValueError(f"unknown process(es) {bad}; valid choices: {list(PROCESSES)}")
    bad = [g for g in cfg.grids if g not in jdiff.timesteps.GRIDS]
    if bad:
        raise ValueError(f"unknown grid(s) {bad}; valid choices: {sorted(jdiff.timesteps.GRIDS)}")
    for m in cfg.mixtures:
        if m not in MIXTURES:
            raise ValueError(f"unknown mixture {m!r}; valid choices: {list(MIXTURES)}")
    solvers = _registry.select(cfg.solvers)
    tic = time.perf_counter()
    with jax.enable_x64(True):
        combos = [run_combo(m, p, solvers, cfg, log) for m in cfg.mixtures for p in cfg.processes]
        records = [r for c in combos for r in c["records"]]
        result = dict(
            benchmark="solver_accuracy",
            environment=environment(),
            config=dataclasses.asdict(cfg),
            solvers={
                n: dict(
                    note=e.note, nfe_per_step=e.nfe_per_step, expected_order=e.order, repr=repr(s)
                )
                for n, (e, s) in solvers.items()
            },
            unavailable={} if cfg.solvers else _registry.unavailable(),
            references=[c["reference"] for c in combos],
            records=records,
            learned=[d for c in combos for d in c["learned"]],
        )
        result["summary"] = summarise(records, cfg)
    result["seconds"] = time.perf_counter() - tic
    stem = "solver_accuracy"
    write_json(results_path(cfg.out, stem, "json"), result)
    _markdown(result, cfg, results_path(cfg.out, stem, "md"))
    _plot(result, cfg, results_path(cfg.out, stem, "png"))
    log(f"wrote {results_path(cfg.out, stem, 'md')} ({result['seconds']:.0f}s)")
    return result


def parse_args(argv=None) -> Config:
    """Command-line options → `Config`."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--solvers", nargs="+", help="registry names (default: every available solver)")
    ap.add_argument("--processes", nargs="+", choices=list(PROCESSES))
    ap.add_argument("--mixtures", nargs="+", choices=list(MIXTURES))
    ap.add_argument("--nfes", nargs="+", type=int)
    ap.add_argument("--grids", nargs="+", choices=list(GRIDS))
    ap.add_argument("--batch", type=int)
    ap.add_argument("--n-exact", type=int)
    ap.add_argument("--no-learn", action="store_true", help="skip the learned-grid comparison")
    ap.add_argument("--learn-iters", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--reference", choices=list(REFERENCES), help="adaptive reference solver")
    ap.add_argument("--reference-tol", type=float, help="its rtol = atol")
    ap.add_argument("--out", help="output folder (default benchmarks/results)")
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: DDIM + Euler, VP, 2-D, NFE 5 and 10"
    )
    a = ap.parse_args(argv)
    cfg = quick_config() if a.quick else Config()
    for field in (
        "solvers",
        "processes",
        "mixtures",
        "nfes",
        "grids",
        "batch",
        "n_exact",
        "learn_iters",
        "seed",
        "out",
        "reference",
        "reference_tol",
    ):
        v = getattr(a, field)
        if v is not None:
            setattr(cfg, field, v)
    if a.no_learn:
        cfg.learn = False
    return cfg


def quick_config() -> Config:
    """The smoke configuration the test suite runs: 2 solvers, 1 process, 2 NFEs, no learning."""
    return Config(
        solvers=["DDIM", "Euler"],
        processes=["vp"],
        mixtures=["gmm2d"],
        nfes=[5, 10],
        batch=64,
        n_exact=256,
        learn=False,
        reference="tsit5",
        reference_tol=1e-9,
        quick=True,
    )


if __name__ == "__main__":
    run(parse_args())
