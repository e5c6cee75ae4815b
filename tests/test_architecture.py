"""The package's import hygiene (docs/architecture.md): no cycle (also through imports under
``if TYPE_CHECKING:``), no in-package import inside a function,
and no library package importing an application or a higher layer."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import facelivt

REPO = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("check_imports", REPO / "scripts" / "check_imports.py")
check_imports = importlib.util.module_from_spec(_spec)
sys.modules["check_imports"] = check_imports
_spec.loader.exec_module(check_imports)

# docs/architecture.md, "Layers": a package may import only packages of a lower layer (or its own).
# errors sits below the other leaf modules, which raise its errors; the CLI sits on the quickstart.
LAYER = {
    "errors": 0, "extras": 0.25, "files": 0.5, "transactions": 0.5, "devices": 0.5, "runtime": 0.5, "settings": 0.5, "cpu": 0.75, "precision": 0.8,
    "models": 1, "data": 2, "losses": 2, "evaluation": 3, "deploy": 4, "training": 4,
    "inference": 5, "quickstart": 6, "serve": 6.5, "cli": 7,
}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycle_and_no_import_hidden_in_a_function():
    graph, cycles, hidden = check_imports.analyse()
    assert len(graph) > 50  # the scan really saw the package
    assert cycles == []
    assert hidden == {}


def test_imports_point_down_the_layers():
    graph, _, _ = check_imports.analyse()
    upward = []
    for module, targets in graph.items():
        src = _package(module)
        if src not in LAYER:
            continue
        for target in targets:
            dst = _package(target)
            if dst is None:  # the top-level facelivt package re-exports deploy: only applications use it
                if LAYER[src] < LAYER["quickstart"]:
                    upward.append(f"{module} -> {target}")
            elif dst != src and dst in LAYER and LAYER[dst] >= LAYER[src]:
                upward.append(f"{module} -> {target}")
    assert upward == [], upward


def _analyse_planted(tmp_path, modules: dict[str, str]):
    """``check_imports.analyse()`` over a planted package ``facelivt`` made of ``modules`` (name -> source)."""
    pkg = tmp_path / "facelivt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, source in modules.items():
        (pkg / name).write_text(source)
    old = check_imports.ROOT
    check_imports.ROOT = tmp_path
    try:
        return check_imports.analyse()
    finally:
        check_imports.ROOT = old


def test_the_check_finds_a_planted_cycle(tmp_path):
    """The checker itself: a cycle and a hidden import in a planted package are reported."""
    _, cycles, hidden = _analyse_planted(tmp_path, {"a.py": "from facelivt import b\n",
                                                    "b.py": "def f():\n    from facelivt.a import x\n"})
    assert cycles == [["facelivt.a", "facelivt.b"]]
    assert hidden == {"facelivt.b": [(2, "facelivt.a")]}


def test_the_check_counts_imports_made_for_annotations_only(tmp_path):
    """An import under ``if TYPE_CHECKING:`` is a dependency too: a cycle through it is reported."""
    _, cycles, hidden = _analyse_planted(tmp_path, {
        "a.py": "from facelivt import b\n",
        "b.py": "import typing\nif typing.TYPE_CHECKING:\n    from facelivt.a import x\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from facelivt import d\n",
        "d.py": "from facelivt.c import y\n",
    })
    assert cycles == [["facelivt.a", "facelivt.b"], ["facelivt.c", "facelivt.d"]]
    assert hidden == {}


def test_the_check_reads_the_lazy_exports_table_as_imports(tmp_path):
    """``_EXPORTS = {name: module}`` (PEP 562 lazy loading) imports those modules on first use: the
    checker counts each as an import (third-party values are ignored), so a cycle through it is reported."""
    graph, cycles, _ = _analyse_planted(tmp_path, {
        "__init__.py": "_EXPORTS = {'x': 'facelivt.a', 'n': 'numpy'}\n",
        "a.py": "import facelivt\n",
        "b.py": "x = 1\n",
        "c.py": "_EXPORTS: dict = {'y': 'facelivt.b'}\n",
    })
    assert graph["facelivt"] == {"facelivt.a"}
    assert graph["facelivt.c"] == {"facelivt.b"}
    assert cycles == [["facelivt", "facelivt.a"]]


def test_the_top_level_exports_are_edges_of_the_real_graph():
    graph, _, _ = check_imports.analyse()
    assert set(facelivt._EXPORTS.values()) <= graph["facelivt"]
