"""Smoke test of `benchmarks/likelihood.py` (its quick mode), writing into a temporary folder."""

from __future__ import annotations

import json

import jax
import numpy as np

from benchmarks import likelihood


def test_likelihood_benchmark_quick(tmp_path):
    cfg = likelihood.quick_config()
    cfg.out = str(tmp_path)
    result = likelihood.run(cfg, log=lambda *_: None)
    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"likelihood.{suffix}").stat().st_size > 0
    data = json.loads((tmp_path / "likelihood.json").read_text())
    assert data["environment"]["x64"] is True
    assert not jax.config.jax_enable_x64  # the benchmark does not leak float64 into the suite
    (rec,) = result["records"]
    # both methods reach the exact PF-ODE value at rtol = atol = 1e-5
    assert rec["jdiff_abs_err"] < 1e-3 and rec["host_abs_err"] < 1e-3, rec
    assert rec["jdiff_nfe"] > 0 and rec["host_nfe"] > 0
    assert np.isfinite(rec["speedup"]) and rec["speedup"] > 0
    assert abs(rec["truncation_gap"]) < 0.05 and abs(rec["prior_gap"]) < 0.05
    assert "Gaps to the data log-density" in (tmp_path / "likelihood.md").read_text()
