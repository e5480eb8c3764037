"""Shared helpers of jdiff's benchmarks: machine/version info, result files, timing, tables.

Every benchmark writes `<name>.json` (all numbers plus `environment()`), `<name>.md` (tables) and
`<name>.png` (plots) into `benchmarks/results/` (or `--out`).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` without installing jdiff
    sys.path.insert(0, str(ROOT))

__all__ = [
    "ROOT",
    "RESULTS",
    "environment",
    "write_json",
    "write_markdown",
    "markdown_table",
    "fmt",
    "time_call",
    "results_path",
]


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Machine, device and library versions (for the header of every result file)."""
    import jax

    devices = jax.devices()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind if devices else None,
        "x64": bool(jax.config.jax_enable_x64),
        "versions": {
            p: _version(p)
            for p in ("jax", "jaxlib", "diffrax", "equinox", "flax", "optax", "numpy")
        },
        "git_commit": _git_commit(),
    }


def results_path(out_dir: str | Path | None, stem: str, suffix: str) -> Path:
    """`<out_dir or benchmarks/results>/<stem>.<suffix>`, creating the folder."""
    d = Path(out_dir) if out_dir is not None else RESULTS
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{stem}.{suffix}"


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def write_json(path: Path, payload: dict) -> Path:
    """Write `payload` as indented JSON (non-finite floats become null)."""
    path.write_text(json.dumps(_clean(payload), indent=1, default=str) + "\n")
    return path


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for a Markdown table (`—` for missing)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, int):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.{digits}g}"
    return f"{x:.{max(digits - 1, 1)}e}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in r) + " |")
    return "\n".join(lines)


def write_markdown(path: Path, title: str, env: dict, sections: Sequence[tuple[str, str]]) -> Path:
    """Write a Markdown report: title, environment line, then `(heading, body)` sections."""
    v = env["versions"]
    head = (
        f"# {title}\n\n"
        f"{env['date']} · {env['backend']} ({env['device_kind']}) · {env['cpu']} × "
        f"{env['cpu_count']} · jax {v['jax']} · diffrax {v['diffrax']} · "
        f"x64 {env['x64']} · commit {env['git_commit']}\n"
    )
    body = "".join(f"\n## {h}\n\n{b}\n" for h, b in sections)
    path.write_text(head + body)
    return path


def time_call(fn: Callable[[], Any], repeats: int = 5) -> list[float]:
    """Wall times (s) of `repeats` calls of `fn`, each ended by `block_until_ready`."""
    import jax

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def median(xs: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return statistics.median(xs)
