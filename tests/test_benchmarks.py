"""Smoke tests of the benchmark scripts (their quick modes), writing into a temporary folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: `benchmarks`

from benchmarks import solver_accuracy  # noqa: E402


@pytest.mark.slow  # ~20 s of CPU, mostly compiling 3 programs
def test_solver_accuracy_quick(tmp_path):
    cfg = solver_accuracy.quick_config()
    cfg.out = str(tmp_path)
    result = solver_accuracy.run(cfg, log=lambda *_: None)
    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"solver_accuracy.{suffix}").stat().st_size > 0
    data = json.loads((tmp_path / "solver_accuracy.json").read_text())
    assert data["environment"]["x64"] is True
    recs = result["records"]
    assert {r["solver"] for r in recs} == set(cfg.solvers)
    small, large = sorted(cfg.nfes)
    for solver in cfg.solvers:
        for grid in cfg.grids:
            by_budget = {
                r["nfe_budget"]: r for r in recs if r["solver"] == solver and r["grid"] == grid
            }
            assert by_budget[small]["nfe"] <= small and by_budget[large]["nfe"] <= large
            e_small, e_large = by_budget[small]["rmse"], by_budget[large]["rmse"]
            assert np.isfinite(e_small) and np.isfinite(e_large)
            assert e_large < e_small, (solver, grid, e_small, e_large)
    # DDIM is first order: doubling the NFE roughly halves the error
    ddim = [o for o in result["summary"]["orders"] if o["solver"] == "DDIM"]
    assert ddim and all(0.6 < o["order"] < 1.6 for o in ddim), ddim
    (best,) = result["summary"]["best_at_10"]
    at10 = [r["rmse"] for r in recs if r["nfe_budget"] == 10]
    assert best["rmse"] == min(at10)
    assert "Most accurate at 10 NFE" in (tmp_path / "solver_accuracy.md").read_text()


def test_sampling_speed_and_overhead_quick(tmp_path):
    from benchmarks import sampling_overhead, sampling_speed

    cfg = sampling_speed.quick_config()
    cfg.out = str(tmp_path)
    cfg.repeats = 2
    speed = sampling_speed.run(cfg, log=lambda *_: None)
    over = sampling_overhead.run(
        sampling_overhead.Config(quick=True, out=str(tmp_path)), log=lambda *_: None
    )
    for stem in ("sampling_speed", "sampling_overhead"):
        for suffix in ("json", "md", "png"):
            assert (tmp_path / f"{stem}.{suffix}").stat().st_size > 0
    for rec in speed["records"] + over["records"]:
        assert rec["solver_s"] > 0 and rec["floor_s"] > 0 and rec["nfe"] >= 1
    # the floor makes exactly the NFE the solve reported
    assert {r["solver"]: r["nfe"] for r in over["records"]} == {"Euler": 4, "DDIM": 4, "Heun": 4}
