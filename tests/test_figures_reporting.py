"""The shared output layer (attnsvm.reporting, attnsvm.progress) and its side effects."""

from __future__ import annotations

import doctest
import io
import json
import math

import numpy as np
import pytest

import attnsvm.progress
import attnsvm.reporting
from attnsvm.progress import Progress
from attnsvm.reporting import (
    correlation,
    fmt_number,
    plural,
    png_data_uri,
    to_jsonable,
    write_json_atomic,
)


@pytest.mark.parametrize("module", [attnsvm.reporting, attnsvm.progress])
def test_docstring_examples(module: object) -> None:
    res = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert res.attempted > 0 and res.failed == 0


def test_correlation_is_scale_invariant_and_survives_extreme_scales() -> None:
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    ref = float(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B)))
    assert correlation(A, B) == pytest.approx(ref, abs=1e-15)
    for s in (1e-200, 1e-150, 1e150, 1e200):  # the product of the norms under/overflows
        assert correlation(s * A, B) == pytest.approx(ref, abs=1e-12)
        assert correlation(s * A, s * B) == pytest.approx(ref, abs=1e-12)
    assert correlation(A, -2.0 * A) == pytest.approx(-1.0, abs=1e-15)
    assert math.isnan(correlation(A, None)) and math.isnan(correlation(A, 0 * A))
    assert math.isnan(correlation(A, np.full((5, 5), np.inf)))


def test_strict_json_and_atomic_write(tmp_path: object) -> None:
    value = {"a": (np.float64(1.5), np.int64(2)), "b": np.array([np.nan, np.inf, 1.0]),
             1: np.bool_(True)}
    assert to_jsonable(value) == {"a": [1.5, 2], "b": [None, None, 1.0], "1": True}
    assert to_jsonable(value, strict=False)["b"][0] != to_jsonable(value, strict=False)["b"][0]
    path = tmp_path / "x.json"  # type: ignore[operator]
    text = write_json_atomic(path, value)
    assert json.loads(path.read_text()) == json.loads(text)
    assert "NaN" not in text and "Infinity" not in text


def test_numbers_in_prose() -> None:
    assert fmt_number(5.190476190476191) == "5.19"
    assert fmt_number(0.9999999971) == "1.000"  # a correlation near 1 keeps its digits
    assert fmt_number(0.9804731163039242) == "0.980"
    assert fmt_number(3.4e-9) == "3.40e-09" and fmt_number(float("nan")) == "n/a"
    assert plural(1, "cell") == "1 cell" and plural(3, "cell") == "3 cells"


def test_png_data_uri_of_a_figure_without_pyplot() -> None:
    fig, ax = attnsvm.reporting.new_figure(1, 1)
    ax[0, 0].plot([0, 1], [1, 0])
    uri = png_data_uri(fig)
    assert uri.startswith("data:image/png;base64,iVBORw0KGgo")  # PNG magic, base64


def test_progress_redraws_one_line_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bar = Progress(3, "sweep", out, unit="cells", min_interval=0.0)
    for _ in range(3):
        bar.advance()
    bar.close()
    text = out.getvalue()
    # tqdm's bar: every frame starts with a carriage return, one newline at the end
    assert text.count("\r") >= 3 and text.endswith("\n") and text.count("\n") == 1
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("sweep: 100%|") and "3/3" in last and "cells/s" in last
