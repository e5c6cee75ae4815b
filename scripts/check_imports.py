"""Import hygiene of the facelivt package: cycles between modules and in-package imports inside functions.

    python scripts/check_imports.py            # report; exit 1 if a cycle or a hidden import is found
    python scripts/check_imports.py --graph    # also print every module's in-package imports

Every import forms the graph, module-level, inside a function or under ``if TYPE_CHECKING:`` (an import
hidden in a function is still a dependency, and one made for annotations only still ties the two modules'
designs together: a cycle through it is a cycle).
A module's lazy-loading table counts as imports too: the values of a module-level ``_EXPORTS = {name:
"facelivt.module"}`` dict (PEP 562 ``__getattr__``, as in ``facelivt/__init__.py``) are the modules it
imports on first use. An import of a package (``facelivt.deploy``) points at its ``__init__``; ``from pkg import name``
points at ``pkg.name`` when that is a module, else at ``pkg``. Imports inside functions are listed
separately: the only ones allowed are of optional third-party dependencies, never of facelivt itself.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "facelivt"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def targets(node: ast.AST, current: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    out = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = resolve(node, current, is_package)
        for a in node.names:
            sub = f"{base}.{a.name}"
            out.append(sub if sub in modules else base)
    return [t for t in out if t == PACKAGE or t.startswith(PACKAGE + ".")]


def scan(path: Path, name: str, modules: dict[str, Path]):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    top, hidden = set(), []

    def walk(body, in_function: bool):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found = targets(node, name, is_package, modules)
                if in_function:
                    hidden.extend((node.lineno, t) for t in dict.fromkeys(found))
                top.update(t for t in found if t in modules)
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for field in ("body", "orelse", "finalbody", "handlers"):
                child = getattr(node, field, None)
                if isinstance(child, list):
                    walk(child, inner)

    walk(tree.body, False)
    top.update(t for t in lazy_exports(tree) if t in modules)
    return top, hidden


def lazy_exports(tree: ast.Module) -> list[str]:
    """The in-package modules named as values of a module-level ``_EXPORTS`` dict literal."""
    out = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id == "_EXPORTS" and isinstance(value, ast.Dict):
            out += [v.value for v in value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return [t for t in out if t == PACKAGE or t.startswith(PACKAGE + ".")]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def analyse():
    modules = all_modules()
    graph, hidden = {}, {}
    for name, path in modules.items():
        graph[name], h = scan(path, name, modules)
        # a package's __init__ importing its own submodules is not a cycle with them
        graph[name].discard(name)
        if h:
            hidden[name] = h
    return graph, cycles(graph), hidden


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", action="store_true")
    args = parser.parse_args()
    graph, found, hidden = analyse()
    if args.graph:
        for name in sorted(graph):
            print(f"{name} -> {', '.join(sorted(graph[name])) or '-'}")
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} in-package imports")
    for comp in found:
        print("cycle: " + " <-> ".join(comp))
    for name, items in sorted(hidden.items()):
        for line, target in items:
            print(f"import inside a function: {name}:{line} -> {target}")
    print(f"{len(found)} cycles, {sum(map(len, hidden.values()))} in-package imports inside functions")
    return 1 if found or hidden else 0


if __name__ == "__main__":
    sys.exit(main())
