"""Overhead of `jdiff.sample` over the network-evaluation floor.

Network: Flax NNX MLP, 3 × 512 hidden (SiLU, sinusoidal time embedding), data dimension D = 64,
batch 4096. For NFE ∈ {10, 50} it times

* `jdiff.sample(model, solver, x_T, ts)` for Euler, DDIM and Heun (whole trajectory in one
  compiled program), and
* the floor: the same number of network evaluations chained in one compiled `lax.fori_loop`
  (x ← x − h·F(x, t_i)) with no solver,

interleaving the two, median of `--repeats` runs after a warm-up, and reports the ratio (target
≤ 1.15). Writes `benchmarks/results/sampling_overhead[_TAG].{json,md,png}`.

    python benchmarks/sampling_overhead.py            # full (a few minutes on 2 CPU cores)
    python benchmarks/sampling_overhead.py --quick    # tiny sizes, seconds
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import matplotlib
import tyro
from flax import nnx

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from _common import (  # noqa: E402
    environment,
    markdown_table,
    median,
    results_path,
    write_json,
    write_markdown,
)

import jdiff  # noqa: E402
from jdiff import timesteps  # noqa: E402
from jdiff.nn import MLP, split_apply  # noqa: E402
from jdiff.process import VP  # noqa: E402
from jdiff.solvers import DDIM, Euler, Heun  # noqa: E402

SOLVERS = {"euler": (Euler, 1), "ddim": (DDIM, 1), "heun": (Heun, 2)}


@dataclasses.dataclass(frozen=True)
class Args:
    """Benchmark options."""

    dim: int = 64
    batch: int = 4096
    hidden: tuple[int, ...] = (512, 512, 512)
    nfes: tuple[int, ...] = (10, 50)
    solvers: tuple[str, ...] = ("euler", "ddim", "heun")
    repeats: int = 5
    quick: bool = False
    """Tiny sizes for the test suite."""
    out: str | None = None
    """Output folder (default benchmarks/results)."""
    tag: str = ""
    """Suffix of the result files (e.g. the device: `gpu`)."""


def floor_fn(apply_fn, nfe):
    """NFE chained network evaluations in one compiled loop, no solver."""

    @jax.jit
    def run(params, x, ts):
        def body(i, x):
            t = jnp.broadcast_to(ts[i], x.shape[:1])
            return x - 0.01 * apply_fn(params, x, t, None)

        return jax.lax.fori_loop(0, nfe, body, x)

    return run


def run(args: Args) -> dict:
    if args.quick:
        args = dataclasses.replace(args, dim=4, batch=64, hidden=(32, 32), nfes=(4,), repeats=2)
    unknown = set(args.solvers) - set(SOLVERS)
    if unknown:
        raise ValueError(f"unknown solvers {sorted(unknown)}; valid choices: {sorted(SOLVERS)}")
    process = VP()
    apply_fn, params = split_apply(MLP(args.dim, hidden=args.hidden, rngs=nnx.Rngs(0)))
    model = jdiff.Model(apply_fn, params, process, "eps")
    x_T = process.prior_sample(jax.random.key(0), (args.batch, args.dim))
    rows = []
    for nfe in args.nfes:
        floor = floor_fn(apply_fn, nfe)
        floor_ts = timesteps.uniform(process, nfe)
        t0 = time.perf_counter()
        jax.block_until_ready(floor(params, x_T, floor_ts))
        floor_compile = time.perf_counter() - t0
        for name in args.solvers:
            cls, per_step = SOLVERS[name]
            n = nfe // per_step if name != "heun" else (nfe + 1) // 2
            ts = timesteps.uniform(process, n, end_at_zero=name == "heun")
            solver = cls()
            t0 = time.perf_counter()
            sol = jdiff.solve(model, solver, x_T, ts)
            jax.block_until_ready(sol.samples)
            compile_s = time.perf_counter() - t0
            real_nfe = int(sol.nfe)
            floor_real = floor_fn(apply_fn, real_nfe) if real_nfe != nfe else floor
            jax.block_until_ready(floor_real(params, x_T, timesteps.uniform(process, real_nfe)))
            fts = timesteps.uniform(process, real_nfe)
            t_solver, t_floor = [], []
            for _ in range(args.repeats):  # interleave to share the machine's noise
                t0 = time.perf_counter()
                jax.block_until_ready(jdiff.sample(model, solver, x_T, ts))
                t_solver.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                jax.block_until_ready(floor_real(params, x_T, fts))
                t_floor.append(time.perf_counter() - t0)
            rows.append(
                {
                    "solver": name,
                    "nfe": real_nfe,
                    "sample_s": median(t_solver),
                    "floor_s": median(t_floor),
                    "ratio": median(t_solver) / median(t_floor),
                    "compile_s": compile_s,
                    "floor_compile_s": floor_compile,
                    "all_sample_s": t_solver,
                    "all_floor_s": t_floor,
                }
            )
            print(
                f"{name:6s} NFE {real_nfe:3d}: sample {rows[-1]['sample_s'] * 1e3:8.1f} ms, "
                f"floor {rows[-1]['floor_s'] * 1e3:8.1f} ms, ratio {rows[-1]['ratio']:.3f}"
            )
    env = environment()
    stem = "sampling_overhead" + (f"_{args.tag}" if args.tag else "")
    payload = {"args": dataclasses.asdict(args), "environment": env, "rows": rows, "target": 1.15}
    write_json(results_path(args.out, stem, "json"), payload)
    table = markdown_table(
        ["solver", "NFE", "jdiff.sample (ms)", "floor (ms)", "ratio", "compile (s)"],
        [
            [
                r["solver"],
                r["nfe"],
                r["sample_s"] * 1e3,
                r["floor_s"] * 1e3,
                r["ratio"],
                r["compile_s"],
            ]
            for r in rows
        ],
    )
    desc = (
        f"MLP {args.hidden} (NNX), D = {args.dim}, batch {args.batch}, VP ε-model; median of "
        f"{args.repeats} interleaved runs. Floor = the same NFE network evaluations chained in "
        "one compiled `lax.fori_loop`. Target ratio ≤ 1.15."
    )
    write_markdown(
        results_path(args.out, stem, "md"),
        "Sampling overhead",
        env,
        [("Results", desc + "\n\n" + table)],
    )
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in args.solvers:
        r = [row for row in rows if row["solver"] == name]
        ax.plot([row["nfe"] for row in r], [row["ratio"] for row in r], "o-", label=name)
    ax.axhline(1.15, color="k", ls="--", label="target")
    ax.set(xlabel="NFE", ylabel="time / floor", title=f"jdiff.sample overhead ({env['backend']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(results_path(args.out, stem, "png"), dpi=90)
    plt.close(fig)
    return payload


if __name__ == "__main__":
    run(tyro.cli(Args))
