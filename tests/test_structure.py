"""The package's import structure: no import cycles among its modules.

The graph has an edge ``A -> B`` for every module-level ``import``/``from ... import`` of
``A`` that loads module ``B`` of attnsvm (``from .x import y`` loads ``x`` and, when ``y`` is a
submodule, ``x.y``); imports under ``if TYPE_CHECKING:`` and inside functions are not edges,
nor are a module's own parent packages (already being imported when it runs).  Its strongly
connected components (scipy) must all be single modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

import attnsvm

ROOT = Path(attnsvm.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _targets(name: str, is_pkg: bool, node: ast.Import | ast.ImportFrom,
             mods: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        mod = ".".join([*base, *([node.module] if node.module else [])])
    else:
        mod = node.module or ""
    return [mod, *(f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in mods)]


def import_graph() -> dict[str, set[str]]:
    """Module -> the attnsvm modules its module-level imports load."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(name, path.name == "__init__.py", node, mods):
                parts = target.split(".")
                for k in range(2, len(parts) + 1):  # a.b.c loads a.b first
                    dep = ".".join(parts[:k])
                    if dep in mods and dep != name and not name.startswith(dep + "."):
                        deps.add(dep)
        graph[name] = deps
    return graph


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "attnsvm.cli.solve_cmd" in graph
    assert "attnsvm.report_solve" in graph["attnsvm.cli.solve_cmd"]
    assert "attnsvm.svm.rotary" in graph["attnsvm.rotary_instance"]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module."""
    names = sorted(graph)
    index = {n: i for i, n in enumerate(names)}
    edges = np.array([(index[a], index[b]) for a in names for b in graph[a]]).reshape(-1, 2)
    adj = csr_array((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                    shape=(len(names), len(names)))
    n, labels = connected_components(adj, directed=True, connection="strong")
    return [[names[i] for i in np.flatnonzero(labels == c)] for c in range(n)
            if np.count_nonzero(labels == c) > 1]


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert cycles(graph) == []
    # the check is not vacuous: the old instance <-> rotary_instance import is a cycle
    graph["attnsvm.instance"].add("attnsvm.rotary_instance")
    assert cycles(graph) == [["attnsvm.instance", "attnsvm.rotary_instance"]]
