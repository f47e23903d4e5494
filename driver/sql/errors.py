"""The exceptions Spark SQL raises, under PySpark's class names.

``AnalysisException`` (a name or type that does not resolve),
``ParseException`` (SQL text that does not parse; a subclass of
AnalysisException, as in PySpark) and ``PySparkException``, their base,
which carries the error condition (``getCondition()``, e.g.
``UNRESOLVED_COLUMN.WITH_SUGGESTION``) and SQLSTATE.
"""
from __future__ import annotations

import re

__all__ = ["PySparkException", "AnalysisException", "ParseException", "IllegalArgumentException",
           "QueryExecutionException", "PySparkTypeError", "PySparkValueError",
           "ArithmeticException", "NumberFormatException"]

_CONDITION = re.compile(r"^\[([A-Z0-9_.]+)\]")
_SQLSTATE = re.compile(r"SQLSTATE: ([0-9A-Z]{5})")


class PySparkException(Exception):
    """Base of the SQL errors: the message starts with ``[CONDITION]``."""

    def __init__(self, message: str | None = None, errorClass: str | None = None,
                 messageParameters: dict | None = None):
        self._message = message or ""
        found = _CONDITION.match(self._message.lstrip())
        self._condition = errorClass or (found.group(1) if found else None)
        self._parameters = dict(messageParameters or {})
        super().__init__(self._message)

    def getCondition(self) -> str | None:
        return self._condition

    getErrorClass = getCondition

    def getMessageParameters(self) -> dict:
        return dict(self._parameters)

    def getSqlState(self) -> str | None:
        found = _SQLSTATE.search(self._message)
        return found.group(1) if found else None

    def getMessage(self) -> str:
        return self._message

    def getQueryContext(self) -> list:
        return []

    def __str__(self) -> str:
        return self._message


class AnalysisException(PySparkException):
    """A query that cannot be analysed: an unknown column, table or function, a type mismatch."""


class ParseException(AnalysisException):
    """SQL text that does not parse; the message names the line and position."""


class IllegalArgumentException(PySparkException):
    pass


class QueryExecutionException(PySparkException):
    pass


class ArithmeticException(PySparkException):
    """An arithmetic error while running a query (division by zero, overflow)."""


class NumberFormatException(IllegalArgumentException):
    pass


class PySparkTypeError(PySparkException, TypeError):
    pass


class PySparkValueError(PySparkException, ValueError):
    pass
