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
