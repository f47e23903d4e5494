"""The code's shape, checked on its source (``ast``, nothing imported):

* no module in driver/, worker/ or common/ is over 600 lines, and no function
  over 60 (from its ``def`` line to its last line, nested functions counted on
  their own too);
* driver/'s packages import each other without a cycle: an edge runs from the
  package of a module to the package of each driver module it imports at
  module level (``if TYPE_CHECKING:`` blocks excluded; a module directly in
  driver/ counts as a package of its own, driver/__init__.py as ``driver``);
* worker/ never imports the driver at module level, and common/ imports
  neither the driver nor the worker (imports go one way: DESIGN.md).

Each failure names its offenders.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("driver", "worker", "common")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


@functools.cache
def sources(layer: str) -> tuple[tuple[Path, ast.Module, int], ...]:
    """Every module of a layer: (path, syntax tree, line count)."""
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        text = path.read_text()
        found.append((path, ast.parse(text, str(path)), text.count("\n")))
    return tuple(found)


def module_name(path: Path) -> str:
    """``driver/rdd/base.py`` -> ``sluicegate.driver.rdd.base`` (a package: its folder)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("sluicegate", *parts))


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_time_statements(body: list[ast.stmt]):
    """The statements that run when the module is imported: into ``if``/``try``/``with``
    and class bodies, not into functions, and not into ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.If):
            if not is_type_checking(node.test):
                yield from import_time_statements(node.body)
            yield from import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(handler.body for handler in node.handlers)):
                yield from import_time_statements(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from import_time_statements(node.body)
        else:
            yield node


def imported_modules(path: Path, tree: ast.Module) -> set[str]:
    """The sluicegate modules ``path`` imports at import time, relative imports resolved;
    ``from package import name`` counts as ``package.name`` when that is a module."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in import_time_statements(tree.body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            origin = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{origin}.{alias.name}"
                found.add(candidate if is_module(candidate) else origin)
    return {name for name in found if name.startswith("sluicegate.")}


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (ROOT / relative).is_dir() or (ROOT / relative.with_suffix(".py")).exists()


def driver_package(name: str) -> str | None:
    """``sluicegate.driver.cluster.runtime`` -> ``driver.cluster``; None outside driver/."""
    parts = name.split(".")[1:]
    if not parts or parts[0] != "driver":
        return None
    return ".".join(parts[:2])


def package_imports() -> dict[str, dict[str, set[str]]]:
    """driver package -> driver package it imports -> the modules doing it."""
    edges: dict[str, dict[str, set[str]]] = {}
    for path, tree, _ in sources("driver"):
        source = driver_package(module_name(path))
        for name in imported_modules(path, tree):
            target = driver_package(name)
            if target is not None and target != source:
                rel = str(path.relative_to(ROOT))
                edges.setdefault(source, {}).setdefault(target, set()).add(rel)
    return edges


def cycles(edges: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_is_over_600_lines():
    long = [f"{path.relative_to(ROOT)}: {lines} lines"
            for layer in LAYERS for path, _, lines in sources(layer) if lines > MAX_MODULE_LINES]
    assert not long, "modules over 600 lines:\n  " + "\n  ".join(long)


def test_no_function_is_over_60_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
            f"{node.end_lineno - node.lineno + 1} lines"
            for layer in LAYERS for path, tree, _ in sources(layer)
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "functions over 60 lines:\n  " + "\n  ".join(long)


def test_driver_packages_import_each_other_without_a_cycle():
    edges = package_imports()
    described = []
    for component in cycles(edges):
        described.append(" <-> ".join(component))
        described += [f"    {source} -> {target}: {', '.join(sorted(edges[source][target]))}"
                      for source in component for target in component
                      if target in edges.get(source, {})]
    assert not described, "package-level import cycles in driver/:\n  " + "\n  ".join(described)


def layer_imports(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    """Modules of ``layer`` importing one of the ``forbidden`` layers at import time."""
    prefixes = tuple(f"sluicegate.{name}" for name in forbidden)
    return [f"{path.relative_to(ROOT)} imports {name}"
            for path, tree, _ in sources(layer)
            for name in sorted(imported_modules(path, tree))
            if name in prefixes or name.startswith(tuple(f"{p}." for p in prefixes))]


def test_the_worker_never_imports_the_driver_at_module_level():
    offenders = layer_imports("worker", ("driver",))
    assert not offenders, "worker/ importing the driver:\n  " + "\n  ".join(offenders)


def test_common_imports_neither_the_driver_nor_the_worker():
    offenders = layer_imports("common", ("driver", "worker"))
    assert not offenders, "common/ importing an upper layer:\n  " + "\n  ".join(offenders)


def test_the_checks_see_what_they_look_for():
    """The checks themselves, on made-up source: a TYPE_CHECKING import is skipped, a
    relative import resolves, and a two-package loop is a cycle."""
    tree = ast.parse("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from ..scheduler import dag\n"
                     "try:\n    from ..rdd import base\nexcept ImportError:\n    pass\n"
                     "def late():\n    from ..status import store\n")
    assert imported_modules(ROOT / "driver" / "context" / "made_up.py", tree) == \
        {"sluicegate.driver.rdd.base"}
    loop = {"driver.a": {"driver.b": {"a.py"}}, "driver.b": {"driver.a": {"b.py"}},
            "driver.c": {"driver.a": {"c.py"}}}
    assert cycles(loop) == [["driver.a", "driver.b"]]
    assert driver_package("sluicegate.driver") == "driver"
    assert driver_package("sluicegate.worker.executor") is None
