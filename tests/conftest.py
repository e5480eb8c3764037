"""Shared test fixtures.

Float64 tests (orders, identities) run inside `jax.enable_x64(True)` via the `x64` fixture so the
rest of the suite stays float32 (DESIGN §8).
"""

import jax
import pytest


@pytest.fixture
def x64():
    """Run the test with 64-bit floats enabled."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compilation caches after each test module.

    The suite compiles well over a thousand small XLA programs; keeping them all alive in one
    process has crashed XLA's CPU compiler late in a full run (once, in
    test_solvers_stochastic.py, which passes on its own), so each module starts fresh.
    """
    yield
    jax.clear_caches()
