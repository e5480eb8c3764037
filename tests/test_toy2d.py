"""The main job (experiments/toy2d.py): smoke run, sample quality after training, kill + resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))

import toy2d  # noqa: E402


def test_smoke_run_writes_outputs(tmp_path):
    out = toy2d.main(toy2d.Config(smoke=True, workdir=str(tmp_path), progress=False))
    for name in (
        "metrics.json",
        "config.json",
        "scatter_fm.png",
        "scatter_vp.png",
        "error_vs_nfe.png",
        "fm/metrics.jsonl",
        "vp/metrics.jsonl",
    ):
        assert (tmp_path / name).exists(), name
    rows = out["results"]
    assert {(r["model"], r["solver"]) for r in rows} == {
        (m, s) for m in ("fm", "vp") for s in ("euler", "heun", "ddim")
    }
    assert all(r["finite"] for r in rows)
    # honest NFE: Euler/DDIM take NFE steps; Heun NFE/2 steps of 2 evaluations
    for r in rows:
        assert r["nfe"] == (2 * r["steps"] if r["solver"] == "heun" else r["steps"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["results"] == rows


@pytest.mark.slow
def test_training_reaches_sample_quality(tmp_path):
    cfg = toy2d.Config(
        workdir=str(tmp_path),
        steps=1500,
        batch_size=256,
        hidden=(128, 128, 128),
        nfes=(20,),
        n_samples=1500,
        progress=False,
    )
    out = toy2d.main(cfg)
    base = out["data_vs_data_energy_distance"]
    for r in out["results"]:
        if r["solver"] == "heun":
            # the trained models' samples are close to the data (energy distance; the same
            # statistic between two fresh data draws is `base`)
            assert r["energy_distance"] < 0.03 + 3 * abs(base), r
            assert r["sample_nll"] < out["data_nll"] + 0.25, r


@pytest.mark.slow
def test_killed_run_resumes_from_checkpoint(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "experiments" / "toy2d.py"),
        "--workdir",
        str(tmp_path),
        "--steps",
        "400",
        "--batch-size",
        "64",
        "--hidden",
        "32",
        "32",
        "--nfes",
        "5",
        "--n-samples",
        "128",
        "--no-progress",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    ckpt = tmp_path / "fm" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline:
        steps = [p.name for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.exists() else []
        if steps:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert steps, "no checkpoint was written before the deadline"
    first = min(int(s) for s in steps)
    assert first < 400
    assert not (tmp_path / "metrics.json").exists()
    # the same command resumes: the fm log continues after the checkpoint instead of restarting
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    lines = [json.loads(x) for x in (tmp_path / "fm" / "metrics.jsonl").read_text().splitlines()]
    logged = [x["step"] for x in lines]
    assert logged == sorted(logged) and len(logged) == len(set(logged))
    assert logged[-1] == 400
    assert (tmp_path / "metrics.json").exists()
