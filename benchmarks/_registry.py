"""The benchmarks' solver registry: display name → how to build the solver, and its NFE per step.

Each entry names a module under `jdiff.solvers`, a class and constructor arguments. `available()`
imports what exists and builds it; entries whose module, class or arguments are missing in this
checkout are reported by `unavailable()` with the reason instead of failing, so the benchmarks run
on whatever solvers the tree has.

`nfe_per_step` is the number of network evaluations of one regular step (k); a benchmark given an
NFE budget takes ⌊NFE/k⌋ steps and reports the NFE the solve actually counted.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

__all__ = ["SolverEntry", "ENTRIES", "available", "unavailable", "select"]


@dataclasses.dataclass(frozen=True)
class SolverEntry:
    """One registry row.

    Attributes:
        name: display name (unique).
        module: module under `jdiff.solvers` (e.g. `"dpm_solver_pp"`).
        cls: class name in that module.
        kwargs: constructor keyword arguments; a value `Sub(module, cls, kwargs)` is itself
            built first (e.g. the predictor of `PredictorCorrector`).
        nfe_per_step: network evaluations of one regular step.
        order: the order the solver is expected to show (None if stochastic / unknown).
        note: a short description for the tables.
    """

    name: str
    module: str
    cls: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    nfe_per_step: int = 1
    order: float | None = None
    note: str = ""

    def build(self):
        """Import and construct the solver (raises ImportError/AttributeError/TypeError/ValueError)."""
        return _construct(self.module, self.cls, self.kwargs)


@dataclasses.dataclass(frozen=True)
class Sub:
    """A constructor argument that is itself a jdiff solver object, built on demand."""

    module: str
    cls: str
    kwargs: tuple[tuple[str, Any], ...] = ()


def _construct(module: str, cls: str, kwargs):
    mod = importlib.import_module(f"jdiff.solvers.{module}")
    args = {
        k: _construct(v.module, v.cls, v.kwargs) if isinstance(v, Sub) else v for k, v in kwargs
    }
    return getattr(mod, cls)(**args)


def _e(name, module, cls, nfe=1, expected=None, note="", **kwargs) -> SolverEntry:
    return SolverEntry(name, module, cls, tuple(kwargs.items()), nfe, expected, note)


ENTRIES: tuple[SolverEntry, ...] = (
    _e("Euler", "ode", "Euler", 1, 1, "Euler on the PF-ODE in t"),
    _e("Heun", "ode", "Heun", 2, 2, "Heun on the PF-ODE in t"),
    _e("DDIM", "ddim", "DDIM", 1, 1, "exponential Euler (η = 0)"),
    _e("DPMSolver-2", "dpm_solver", "DPMSolver", 2, 2, "single-step, noise form", order=2),
    _e("DPMSolver-3", "dpm_solver", "DPMSolver", 3, 3, "single-step, noise form", order=3),
    _e(
        "DPMSolverPP-2S",
        "dpm_solver_pp",
        "DPMSolverPP",
        2,
        2,
        "single-step, data form",
        order=2,
        multistep=False,
    ),
    _e("DPMSolverPP-2M", "dpm_solver_pp", "DPMSolverPP", 1, 2, "multistep, data form", order=2),
    _e(
        "DPMSolverPP-3M",
        "dpm_solver_pp",
        "DPMSolverPP",
        1,
        2,
        "multistep, published update (order 2, see issue 3)",
        order=3,
    ),
    _e(
        "DPMSolverPP-3M-taylor",
        "dpm_solver_pp",
        "DPMSolverPP",
        1,
        3,
        "multistep, Taylor-consistent update",
        order=3,
        variant="taylor",
    ),
    _e("UniPC-2-bh1", "unipc", "UniPC", 1, 3, "UniP-2 + UniC, B(h) = h", order=2, variant="bh1"),
    _e(
        "UniPC-2-bh2",
        "unipc",
        "UniPC",
        1,
        3,
        "UniP-2 + UniC, B(h) = e^h − 1",
        order=2,
        variant="bh2",
    ),
    _e(
        "UniPC-3-bh2",
        "unipc",
        "UniPC",
        1,
        4,
        "UniP-3 + UniC, B(h) = e^h − 1",
        order=3,
        variant="bh2",
    ),
    _e("UniP-2", "unipc", "UniPC", 1, 2, "predictor only", order=2, corrector=False),
    _e("DEIS-2", "deis", "DEIS", 1, 2, "Adams–Bashforth in ρ = σ/α", order=2),
    _e("DEIS-3", "deis", "DEIS", 1, 3, "Adams–Bashforth in ρ = σ/α", order=3),
    _e("EDMHeun", "edm", "EDMHeun", 2, 2, "Heun in σ̄ = σ/α (Karras et al. 2022)"),
    # stochastic samplers: distribution metric only (no pathwise error against the PF-ODE)
    _e("DDPM", "ddim", "DDIM", 1, None, "DDIM η = 1 (ancestral)", eta=1.0),
    _e("EulerMaruyama", "sde", "EulerMaruyama", 1, None, "reverse SDE"),
    _e("Ancestral", "ancestral", "Ancestral", 1, None, "DDPM ancestral"),
    _e("EDMStochastic", "edm", "EDMStochastic", 2, None, "EDM churn (S_churn = 10)", s_churn=10.0),
    _e("SDEDPMSolverPP-1", "sde_dpm", "SDEDPMSolverPP", 1, None, "SDE-DPM-Solver++ 1", order=1),
    _e("SDEDPMSolverPP-2M", "sde_dpm", "SDEDPMSolverPP", 1, None, "SDE-DPM-Solver++(2M)", order=2),
    _e(
        "PC-EM-Langevin",
        "langevin",
        "PredictorCorrector",
        2,
        None,
        "Euler–Maruyama + 1 Langevin step (snr 0.16)",
        predictor=Sub("sde", "EulerMaruyama"),
        corrector=Sub("langevin", "Langevin", (("snr", 0.16), ("n_steps", 1))),
    ),
    _e(
        "AnnealedLangevin",
        "langevin",
        "AnnealedLangevin",
        5,
        None,
        "NCSN, 5 Langevin steps per level",
        n_steps_each=5,
    ),
)


def _try_build(entry: SolverEntry):
    try:
        return entry.build(), None
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        return None, f"{type(err).__name__}: {err}"


def available(names=None) -> dict[str, tuple[SolverEntry, Any]]:
    """`{name: (entry, solver)}` for every entry that builds in this checkout (registry order)."""
    out = {}
    for entry in ENTRIES:
        if names is not None and entry.name not in names:
            continue
        solver, _ = _try_build(entry)
        if solver is not None:
            out[entry.name] = (entry, solver)
    return out


def unavailable() -> dict[str, str]:
    """`{name: reason}` for the entries that do not build in this checkout."""
    out = {}
    for entry in ENTRIES:
        _, why = _try_build(entry)
        if why is not None:
            out[entry.name] = why
    return out


def select(names: list[str] | None) -> dict[str, tuple[SolverEntry, Any]]:
    """`available(names)`, raising `ValueError` naming the choices for an unknown or missing name."""
    known = [e.name for e in ENTRIES]
    if names:
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown solver(s) {bad}; valid choices: {known}")
    got = available(names or None)
    if names:
        missing = [n for n in names if n not in got]
        if missing:
            why = unavailable()
            raise ValueError(
                "solver(s) not available in this checkout: "
                + "; ".join(f"{n} ({why.get(n, '?')})" for n in missing)
            )
    return got
