"""A wire message of six or more fields is built with keyword arguments only, so
that a field added, removed or reordered in common/protocol cannot silently shift
the others at a call site (the style the protocol package asks for)."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
from pathlib import Path

import sluicegate.common.protocol as protocol
from sluicegate.common.protocol.records import WireRecord

ROOT = Path(__file__).resolve().parents[2]
MIN_FIELDS = 6


def _records() -> dict[str, type]:
    for module in pkgutil.iter_modules(protocol.__path__):
        importlib.import_module(f"{protocol.__name__}.{module.name}")
    found: dict[str, type] = {}
    stack = list(WireRecord.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if dataclasses.is_dataclass(cls):
            found[cls.__name__] = cls
    return found


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def test_the_protocol_has_messages_this_rule_covers():
    wide = [name for name, cls in _records().items() if len(dataclasses.fields(cls)) >= MIN_FIELDS]
    assert "LaunchTask" in wide and "TaskFailed" in wide


def test_wide_messages_are_built_with_keyword_arguments():
    wide = {name for name, cls in _records().items()
            if len(dataclasses.fields(cls)) >= MIN_FIELDS}
    offenders = []
    for folder in ("driver", "worker", "common"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text()
            if not any(name in source for name in wide):  # most modules build none
                continue
            for node in ast.walk(ast.parse(source, str(path))):
                if isinstance(node, ast.Call) and node.args and _called_name(node) in wide:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                     f"{_called_name(node)} with {len(node.args)} positional "
                                     "arguments")
    assert not offenders, ("build these messages with keyword arguments only:\n"
                           + "\n".join(offenders))
