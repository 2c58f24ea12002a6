"""One output layer for reports: JSON conversion, provenance, correlation, figures and prose.

Both report writers (``attnsvm reproduce`` in :mod:`attnsvm.experiments.report` and
``attnsvm probe`` in :mod:`attnsvm.probe.report`) use these helpers, so a number is converted,
compared, drawn and printed the same way everywhere.

* :func:`to_jsonable` / :func:`write_json_atomic` -- strict JSON (NaN and inf become ``null``).
* :func:`provenance` / :func:`git_commit` -- what produced a result.
* :func:`correlation` -- ``<A, B> / (||A||_F ||B||_F)``, the papers' alignment measure
  (defined in :mod:`attnsvm._numerics`, re-exported here).
* :func:`new_figure` / :func:`figure_png` / :func:`save_png` / :func:`png_data_uri` --
  matplotlib through the object API (:class:`matplotlib.figure.Figure` with an Agg canvas):
  the process-wide backend is never switched, so importing or calling attnsvm leaves a
  notebook's or an application's matplotlib set-up as it was.
* :func:`fmt_number`, :func:`fmt_share`, :func:`plural` -- numbers in prose.
* :func:`render_template` -- the HTML pages, from the Jinja2 templates in
  ``attnsvm/templates/`` (autoescaped).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._io import atomic_write_bytes, atomic_write_text
from ._numerics import correlation

__all__ = ["to_jsonable", "write_json_atomic", "git_commit", "provenance", "correlation",
           "new_figure", "figure_png", "save_png", "png_data_uri", "fmt_number", "fmt_share",
           "plural", "render_template", "TEMPLATES"]

#: Libraries whose versions :func:`provenance` records when they are already imported.
DEFAULT_LIBRARIES = ("numpy", "scipy", "torch", "cvxpy", "pandas", "matplotlib")


def to_jsonable(value: Any, strict: bool = True) -> Any:
    """``value`` as plain JSON data.

    Tuples become lists, numpy arrays and scalars Python lists and numbers, dict keys strings.
    With ``strict`` NaN and +-inf become ``None`` (strict JSON has no NaN).

    Parameters
    ----------
    value : object
        Nested dicts, lists, tuples, numpy arrays or scalars, Python scalars.
    strict : bool
        Replace non-finite floats by ``None``.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, strict) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), strict)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        value = value.item()
    if strict and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str | os.PathLike[str], value: Any, indent: int | None = 1) -> str:
    """Write ``value`` as strict JSON (see :func:`to_jsonable`) atomically; returns the text."""
    text = json.dumps(to_jsonable(value), indent=indent, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return text


def git_commit(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git tree holding ``path``.

    ``path`` defaults to the installed package's folder (``None`` values outside a checkout).
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                            capture_output=True, text=True, timeout=10)
        return {"commit": sha.stdout.strip(), "dirty": bool(st.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance(libraries: Iterable[str] = DEFAULT_LIBRARIES, **extra: Any) -> dict[str, Any]:
    """Package version, git commit, library versions, machine and time, plus ``extra``.

    Parameters
    ----------
    libraries : iterable of str
        Module names whose ``__version__`` is recorded (``None`` when not imported: recording
        a version never imports a library).
    **extra
        Added as they are (e.g. the command line, the backend).
    """

    libs: dict[str, str | None] = {}
    for mod in libraries:
        m = sys.modules.get(mod)
        libs[mod] = getattr(m, "__version__", None) if m is not None else None
    return {
        "package": "attnsvm", "version": __version__, **git_commit(),
        "python": platform.python_version(), "libraries": libs,
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra,
    }


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4
               ) -> tuple[Any, Any]:
    """A :class:`matplotlib.figure.Figure` on an Agg canvas and its (nrows, ncols) axes.

    No pyplot: the figure is not registered anywhere and the global backend is untouched.

    Returns
    -------
    (Figure, ndarray of Axes, shape (nrows, ncols))
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """The PNG bytes of a matplotlib figure (rendered by Agg)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> bytes:
    """Write the figure as PNG to ``path`` atomically; returns the bytes."""
    data = figure_png(fig, dpi)
    atomic_write_bytes(path, data)
    return data


def png_data_uri(source: Any) -> str:
    """A ``data:image/png;base64,...`` URI of a figure, PNG bytes or a PNG file path."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = Path(source).read_bytes()
    else:
        data = figure_png(source)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def fmt_number(x: Any, digits: int = 3) -> str:
    """A number for prose: integers as they are, floats with ``digits`` significant digits.

    >>> fmt_number(5.190476190476191), fmt_number(0.9999999971), fmt_number(12), fmt_number(None)
    ('5.19', '1.000', '12', 'n/a')
    >>> fmt_number(0.008616181188089544), fmt_number(1381.622172950913), fmt_number(0.98047)
    ('0.00862', '1382', '0.980')
    """
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    v = float(x)
    if not math.isfinite(v):
        return "n/a"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.{max(digits - 1, 0)}e}"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:.0f}"
    if 0.01 <= abs(v) < 1.0:  # shares and correlations: fixed decimals (0.980, 1.000)
        return f"{v:.{digits}f}"
    return f"{v:.{digits}g}"


def fmt_share(x: Any) -> str:
    """A share in [0, 1] as a percentage for prose.

    >>> fmt_share(0.9047619047619048), fmt_share(1.0), fmt_share(0.004), fmt_share(None)
    ('90%', '100%', '0.4%', 'n/a')
    """
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    v = 100.0 * float(x)
    return f"{v:.1f}%" if 0 < abs(v) < 1 else f"{v:.0f}%"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 cell"``, ``"3 cells"``: a count with the right form of ``word``.

    >>> plural(1, "cell"), plural(0, "cell"), plural(2, "instance"), plural(2, "is", "are")
    ('1 cell', '0 cells', '2 instances', '2 are')
    """
    return f"{count} {word if count == 1 else (many or word + 's')}"


#: Folder of the HTML templates (package data).
TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(num=fmt_number, share=fmt_share, data_uri=png_data_uri)
    env.globals.update(plural=plural)
    return env


def render_template(name: str, **context: Any) -> str:
    """Render the HTML template ``name`` of :data:`TEMPLATES` with ``context``.

    Every value is HTML-escaped unless the template marks it safe; an undefined name is an
    error, never an empty string.  Filters: ``num`` (:func:`fmt_number`), ``share``
    (:func:`fmt_share`), ``data_uri`` (:func:`png_data_uri`); ``plural`` is a global.
    """
    return str(_environment().get_template(name).render(**context))
