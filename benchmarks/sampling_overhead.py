"""Overhead of `jdiff.sample` over the network-evaluation floor (issue 2's acceptance check).

Network: Flax NNX MLP 3 × 512 hidden, data dimension D = 64, batch 4096, VP ε-model. For
NFE ∈ {10, 50} and the first solvers (Euler, DDIM, Heun) it times one compiled `jdiff.solve`
against the floor — the same number of network evaluations chained in one compiled
`lax.fori_loop` with no solver — and reports the ratio (target ≤ 1.15). The timing machinery
(AOT-compiled executables, interleaved repeats, median) is `sampling_speed.bench_one`, which
issue 3's all-solver benchmark also uses.

    python benchmarks/sampling_overhead.py                 # full run
    python benchmarks/sampling_overhead.py --quick         # tiny sizes, seconds
    python benchmarks/sampling_overhead.py --tag h200      # on an accelerator

Writes `sampling_overhead[_TAG].{json,md,png}` into `benchmarks/results/` (or `--out`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _registry, sampling_speed  # noqa: E402
from benchmarks._common import (  # noqa: E402
    environment,
    markdown_table,
    results_path,
    write_json,
    write_markdown,
)

TARGET = 1.15


@dataclasses.dataclass
class Config:
    """Benchmark settings (see `--help`)."""

    dim: int = 64
    batch: int = 4096
    hidden: tuple[int, ...] = (512, 512, 512)
    nfes: tuple[int, ...] = (10, 50)
    solvers: tuple[str, ...] = ("Euler", "DDIM", "Heun")
    repeats: int = 5
    tag: str = ""
    out: str | None = None
    quick: bool = False


def run(cfg: Config, log=print) -> dict:
    """Time every (solver, NFE); write JSON, Markdown and PNG; return the result dict."""
    if cfg.quick:
        cfg = dataclasses.replace(cfg, dim=4, batch=64, hidden=(32, 32), nfes=(4,), repeats=3)
    solvers = _registry.select(list(cfg.solvers))
    apply_fn, params = sampling_speed.make_network(cfg.dim, cfg.hidden)
    records = []
    tic = time.perf_counter()
    for nfe in cfg.nfes:
        speed_cfg = sampling_speed.Config(
            nfe=nfe, batch=cfg.batch, dims=[cfg.dim], hidden=cfg.hidden, repeats=cfg.repeats
        )
        for name, (entry, solver) in solvers.items():
            rec = sampling_speed.bench_one(
                name, entry, solver, cfg.dim, apply_fn, params, speed_cfg, log
            )
            if rec is not None:
                records.append(rec)
    result = dict(
        benchmark="sampling_overhead",
        environment=environment(),
        config=dataclasses.asdict(cfg),
        target=TARGET,
        records=records,
        seconds=time.perf_counter() - tic,
    )
    stem = "sampling_overhead" + (f"_{cfg.tag}" if cfg.tag else "")
    write_json(results_path(cfg.out, stem, "json"), result)
    table = markdown_table(
        ["solver", "steps", "NFE", "jdiff.solve (ms)", "floor (ms)", "ratio", "compile (s)"],
        [
            [
                r["solver"],
                r["steps"],
                r["nfe"],
                r["solver_s"] * 1e3,
                r["floor_s"] * 1e3,
                r["ratio"],
                r["compile_s"],
            ]
            for r in records
        ],
    )
    desc = (
        f"Flax NNX MLP {' × '.join(map(str, cfg.hidden))} hidden, D = {cfg.dim}, batch "
        f"{cfg.batch}, VP ε-model, log-SNR grid, float32; median of {cfg.repeats} interleaved "
        "runs of AOT-compiled executables. Floor: the same NFE network evaluations chained in "
        f"one compiled `lax.fori_loop`. Target ratio ≤ {TARGET}."
    )
    write_markdown(
        results_path(cfg.out, stem, "md"),
        "jdiff.sample overhead",
        result["environment"],
        [("Results", desc + "\n\n" + table)],
    )
    _plot(result, cfg, results_path(cfg.out, stem, "png"))
    return result


def _plot(result, cfg, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in cfg.solvers:
        recs = [r for r in result["records"] if r["solver"] == name]
        ax.plot([r["nfe"] for r in recs], [r["ratio"] for r in recs], "o-", label=name)
    ax.axhline(TARGET, color="k", ls="--", label=f"target {TARGET}")
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.set(xlabel="NFE", ylabel="time / floor", title=result["environment"]["backend"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def parse_args(argv=None) -> Config:
    """Command-line options → `Config`."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nfes", nargs="+", type=int, help="NFE budgets (default 10 50)")
    ap.add_argument("--solvers", nargs="+", help="registry names (default Euler DDIM Heun)")
    ap.add_argument("--batch", type=int, help="batch size (default 4096)")
    ap.add_argument("--repeats", type=int, help="timed repeats (median; default 5)")
    ap.add_argument("--tag", help="suffix of the result files, e.g. h200")
    ap.add_argument("--out", help="output folder (default benchmarks/results)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    a = ap.parse_args(argv)
    cfg = Config(quick=a.quick)
    for field in ("nfes", "solvers", "batch", "repeats", "tag", "out"):
        v = getattr(a, field)
        if v is not None:
            setattr(cfg, field, tuple(v) if isinstance(v, list) else v)
    return cfg


if __name__ == "__main__":
    run(parse_args())
