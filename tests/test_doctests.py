"""The examples in the docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["attnsvm", "attnsvm.instance", "attnsvm.svm.frobenius", "attnsvm.svm.estimator",
           "attnsvm.svm.nuclear.solver", "attnsvm.svm.registry", "attnsvm.report_solve",
           "attnsvm.ntp.dataset", "attnsvm.ntp.graph", "attnsvm.ntp.svm"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
