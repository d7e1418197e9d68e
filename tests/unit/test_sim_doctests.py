"""The examples in the simulators' docstrings run."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["simulators", "simulators.faults"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
