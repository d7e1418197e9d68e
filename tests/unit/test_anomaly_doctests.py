"""The numpydoc examples of ``anomaly`` run as doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "anomaly.config",
    "anomaly.detector",
    "anomaly.explain",
    "anomaly.offline",
    "anomaly.registry",
    "anomaly.state",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
