"""Sampling speed of every registered solver against the network-evaluation floor (issue 3).

For data dimension D ∈ {2, 64} and batch 4096, the model is a Flax NNX MLP with 3 × 512 hidden
units (`jdiff.nn.MLP` + `split_apply`, ε-prediction, VP process). For each solver
(`benchmarks/_registry.py`) with an NFE budget (`--nfe`, ⌊NFE/k⌋ steps for k NFE/step):

* **solver time**: one `jdiff.solve` (one compiled diffrax program) on a log-SNR grid;
* **floor**: the same number of network evaluations (the NFE the solve counted) chained in one
  compiled `lax.fori_loop` with no solver, `x ← x − 10⁻³·F(x, t_i)`;
* **ratio** = solver time / floor (target ≤ 1.10);
* **per-step overhead**: the solve's time with a zero-cost model (`apply_fn` returning zeros)
  divided by the number of steps — the cost of the solver's own arithmetic and diffrax's loop;
* **compile time** of the solve (`jit(...).lower(...).compile()`).

Timing: float32, `block_until_ready`, warm-up excluded, median of `--repeats` (≥ 5) runs, floor
and solver runs interleaved to share the machine's noise.

    python benchmarks/sampling_speed.py --device-tag h200     # full run (on an accelerator)
    python benchmarks/sampling_speed.py --quick               # sanity run (small batch, 2 solvers)

Writes `sampling_speed[_TAG].{json,md,png}` into `benchmarks/results/` (or `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jdiff  # noqa: E402
from benchmarks import _registry  # noqa: E402
from benchmarks._common import (  # noqa: E402
    environment,
    markdown_table,
    median,
    results_path,
    write_json,
    write_markdown,
)


@dataclasses.dataclass
class Config:
    """Benchmark settings (see `--help`)."""

    solvers: list[str] | None = None
    nfe: int = 20
    batch: int = 4096
    dims: list[int] = dataclasses.field(default_factory=lambda: [2, 64])
    hidden: tuple[int, ...] = (512, 512, 512)
    repeats: int = 7
    device_tag: str | None = None
    out: str | None = None
    quick: bool = False


def _zeros(params, x, t, cond=None):
    """A zero-cost network: ε̂ = 0."""
    return jnp.zeros_like(x)


def make_network(dim: int, hidden):
    """`(apply_fn, params)` of the MLP (jdiff.nn) for data dimension `dim`."""
    from flax import nnx

    from jdiff.nn import MLP, split_apply

    return split_apply(MLP(dim, hidden=tuple(hidden), rngs=nnx.Rngs(0)))


def _floor_fn(apply_fn, nfe: int):
    """Jitted `nfe` chained network evaluations in one `lax.fori_loop` (no solver)."""

    @jax.jit
    def floor(params, x, times):
        def body(i, x):
            return x - 1e-3 * apply_fn(params, x, jnp.broadcast_to(times[i], x.shape[:1]))

        return jax.lax.fori_loop(0, nfe, body, x)

    return floor


def _solve_fn(model, solver, key):
    @jax.jit
    def run(params, x, ts):
        sol = jdiff.solve(model.with_params(params), solver, x, ts, key=key)
        return sol.samples, sol.nfe

    return run


def bench_one(name, entry, solver, dim, apply_fn, params, cfg: Config, log) -> dict | None:
    """Time one solver at one data dimension; None if its NFE budget gives no step."""
    steps = cfg.nfe // entry.nfe_per_step
    if steps < 1:
        return None
    process = jdiff.process.VP()
    ts = jdiff.timesteps.log_snr(process, steps)
    x = jax.random.normal(jax.random.key(0), (cfg.batch, dim), jnp.float32)
    key = jax.random.key(1) if getattr(solver, "stochastic", False) else None
    model = jdiff.Model(apply_fn, params, process, "eps")

    run = _solve_fn(model, solver, key)
    tic = time.perf_counter()
    compiled = run.lower(params, x, ts).compile()
    compile_s = time.perf_counter() - tic
    nfe = int(jax.block_until_ready(compiled(params, x, ts))[1])  # warm-up; the counted NFE
    # every timed callable is an AOT-compiled executable, so all pay the same dispatch cost
    times = ts[np.arange(nfe) % ts.shape[0]]  # one time per evaluation
    floor = _floor_fn(apply_fn, nfe).lower(params, x, times).compile()
    jax.block_until_ready(floor(params, x, times))

    zero_model = jdiff.Model(_zeros, None, process, "eps")
    zero_run = _solve_fn(zero_model, solver, key).lower(None, x, ts).compile()
    jax.block_until_ready(zero_run(None, x, ts))

    t_solver, t_floor, t_zero = [], [], []
    for _ in range(cfg.repeats):  # interleaved
        for fn, args, acc in (
            (floor, (params, x, times), t_floor),
            (compiled, (params, x, ts), t_solver),
            (zero_run, (None, x, ts), t_zero),
        ):
            tic = time.perf_counter()
            jax.block_until_ready(fn(*args))
            acc.append(time.perf_counter() - tic)
    rec = dict(
        solver=name,
        dim=dim,
        batch=cfg.batch,
        steps=steps,
        nfe=nfe,
        solver_s=median(t_solver),
        floor_s=median(t_floor),
        ratio=median(t_solver) / median(t_floor),
        zero_model_s=median(t_zero),
        overhead_per_step_us=1e6 * median(t_zero) / steps,
        compile_s=compile_s,
        repeats=cfg.repeats,
        solver_times=t_solver,
        floor_times=t_floor,
    )
    log(
        f"D={dim} {name}: {rec['solver_s'] * 1e3:.2f} ms vs floor {rec['floor_s'] * 1e3:.2f} ms "
        f"(ratio {rec['ratio']:.3f}, {nfe} NFE), overhead {rec['overhead_per_step_us']:.1f} µs/step, "
        f"compile {compile_s:.1f}s"
    )
    return rec


def _markdown(result, cfg: Config, path: Path):
    sections = [
        (
            "Setup",
            f"Flax NNX MLP {' × '.join(map(str, cfg.hidden))} hidden (`jdiff.nn.MLP`), ε-prediction, "
            f"VP, log-SNR grid, batch {cfg.batch}, NFE budget {cfg.nfe} (⌊NFE/k⌋ steps), float32. "
            "Floor: the same NFE network evaluations chained in one compiled `lax.fori_loop`. "
            f"Median of {cfg.repeats} interleaved runs after warm-up. Overhead per step: the solve "
            "with a zero-cost model divided by its steps. Target ratio ≤ 1.10.",
        )
    ]
    for dim in cfg.dims:
        rows = [
            [
                r["solver"],
                r["steps"],
                r["nfe"],
                r["solver_s"] * 1e3,
                r["floor_s"] * 1e3,
                r["ratio"],
                r["overhead_per_step_us"],
                r["compile_s"],
            ]
            for r in result["records"]
            if r["dim"] == dim
        ]
        sections.append(
            (
                f"D = {dim}",
                markdown_table(
                    [
                        "solver",
                        "steps",
                        "NFE",
                        "solver ms",
                        "floor ms",
                        "ratio",
                        "overhead µs/step (zero model)",
                        "compile s",
                    ],
                    rows,
                ),
            )
        )
    write_markdown(
        path, "Sampling speed vs the network-evaluation floor", result["environment"], sections
    )


def _plot(result, cfg: Config, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.dims), figsize=(6 * len(cfg.dims), 4), squeeze=False)
    for ax, dim in zip(axes[0], cfg.dims, strict=True):
        recs = [r for r in result["records"] if r["dim"] == dim]
        ax.barh([r["solver"] for r in recs], [r["ratio"] for r in recs], color="tab:blue")
        ax.axvline(1.0, color="k", lw=1)
        ax.axvline(1.1, color="tab:red", ls="--", lw=1, label="target 1.10")
        ax.set_xlabel("solver time / floor")
        ax.set_title(f"D = {dim}, batch {cfg.batch}, NFE ≤ {cfg.nfe}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(cfg: Config, log=print) -> dict:
    """Run the benchmark and write JSON, Markdown and PNG; returns the result dict."""
    if cfg.repeats < 1 or cfg.nfe < 1 or cfg.batch < 1:
        raise ValueError("repeats, nfe and batch must be positive")
    solvers = _registry.select(cfg.solvers)
    records = []
    tic = time.perf_counter()
    for dim in cfg.dims:
        apply_fn, params = make_network(dim, cfg.hidden)
        for name, (entry, solver) in solvers.items():
            rec = bench_one(name, entry, solver, dim, apply_fn, params, cfg, log)
            if rec is not None:
                records.append(rec)
    result = dict(
        benchmark="sampling_speed",
        environment=environment(),
        config=dataclasses.asdict(cfg),
        records=records,
        unavailable={} if cfg.solvers else _registry.unavailable(),
        seconds=time.perf_counter() - tic,
    )
    stem = "sampling_speed" + (f"_{cfg.device_tag}" if cfg.device_tag else "")
    write_json(results_path(cfg.out, stem, "json"), result)
    _markdown(result, cfg, results_path(cfg.out, stem, "md"))
    _plot(result, cfg, results_path(cfg.out, stem, "png"))
    log(f"wrote {results_path(cfg.out, stem, 'md')}")
    return result


def quick_config() -> Config:
    """Sanity run: DDIM and Heun, batch 256, D = 2, 10 NFE, 5 repeats, small hidden layers."""
    return Config(
        solvers=["DDIM", "Heun"],
        nfe=10,
        batch=256,
        dims=[2],
        hidden=(64, 64, 64),
        repeats=5,
        quick=True,
    )


def parse_args(argv=None) -> Config:
    """Command-line options → `Config`."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--solvers", nargs="+", help="registry names (default: every available solver)")
    ap.add_argument("--nfe", type=int, help="NFE budget per sample (default 20)")
    ap.add_argument("--batch", type=int, help="batch size (default 4096)")
    ap.add_argument("--dims", nargs="+", type=int, help="data dimensions (default 2 64)")
    ap.add_argument("--repeats", type=int, help="timed repeats (median; default 7)")
    ap.add_argument("--device-tag", help="suffix of the result files, e.g. h200")
    ap.add_argument("--out", help="output folder (default benchmarks/results)")
    ap.add_argument("--quick", action="store_true", help="sanity run (small, seconds)")
    a = ap.parse_args(argv)
    cfg = quick_config() if a.quick else Config()
    for field in ("solvers", "nfe", "batch", "dims", "repeats", "device_tag", "out"):
        v = getattr(a, field)
        if v is not None:
            setattr(cfg, field, v)
    if cfg.repeats < 5 and not cfg.quick:
        raise ValueError("use --repeats >= 5 (median of at least 5 runs)")
    return cfg


if __name__ == "__main__":
    run(parse_args())
