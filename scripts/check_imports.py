#!/usr/bin/env python3
"""Fail on an import cycle in the package, or on an import against the layers.

Reads every module's imports with `ast` (function-level imports included, imports under
`if TYPE_CHECKING:` left out: they never run), then checks:

1. no cycle between modules, and none between the package's folders;
2. the layers below: a module imports only from its own layer or lower ones. The
   display is never imported by the pipeline, dispatch, rate-limit or protocol code.

    python scripts/check_imports.py    # part of `python3 dev.py test`
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "pandas_llm_annotate"
# Highest first. Each name is a folder or a module at the package root.
LAYERS = [
    {"__init__", "__main__", "accessor", "api", "cli", "dask", "demo", "llamacpp", "simulator"},
    {"display"},
    {"pipeline"},
    {"semantic", "tasks"},
    {"dispatch"},
    {"protocol", "ratelimit", "report"},
    {"config", "errors", "redact", "sync", "text"},
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith(PACKAGE):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
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

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def part(module: str) -> str:
    """The folder (or root module) a module belongs to."""
    rest = module.split(".")[1:]
    return rest[0] if rest else "__init__"


def layer(name: str) -> int:
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise SystemExit(f"check_imports: {name!r} is in no layer: add it to LAYERS")


def main() -> int:
    root = Path(__file__).resolve().parents[1] / PACKAGE
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(paths)
    graph = {name: imports_of(path, name, modules) & modules for name, path in paths.items()}
    problems = [f"import cycle between modules: {' -> '.join(c)}" for c in cycles(graph)]
    for name in sorted(graph):  # a package's __init__ may gather its own modules
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    folders: dict[str, set[str]] = {}
    for name, targets in graph.items():
        folders.setdefault(part(name), set()).update(
            part(t) for t in targets if part(t) != part(name))
    problems += [f"import cycle between folders: {' -> '.join(c)}" for c in cycles(folders)]
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = part(name), part(target)
            if a != b and layer(b) < layer(a):
                problems.append(f"{name} imports {target}: {b} is above {a} in the layers")
    for problem in problems:
        print(problem)
    print(f"check_imports: {len(modules)} modules, "
          f"{sum(map(len, graph.values()))} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
