"""Shared fixtures (the references themselves are in references.py)."""

from __future__ import annotations

import pytest

from attnsvm.instance import Instance, random_instance


@pytest.fixture(scope="session")
def small_instance() -> Instance:
    return random_instance(6, 8, 10, seed=0)
