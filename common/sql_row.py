"""``Row``: a row of a DataFrame, a tuple whose fields can also be read by name.

It lives in ``common`` because executors make rows too (``df.rdd``);
``sluicegate.driver.sql.Row`` is this class.
"""
from __future__ import annotations

from typing import Any, Iterable


class Row(tuple):
    """A row of a DataFrame: a tuple whose fields can also be read by name.

    ``Row(word="a", count=1)`` makes a row; ``Row("word", "count")`` makes a
    row factory, called with the values.
    """

    __fields__: list[str]

    def __new__(cls, *args: Any, **kwargs: Any) -> "Row":
        if args and kwargs:
            raise ValueError("Can not use both args and kwargs to create Row")
        if kwargs:
            row = tuple.__new__(cls, list(kwargs.values()))
            row.__fields__ = list(kwargs)
            return row
        return tuple.__new__(cls, args)

    @classmethod
    def _from_fields(cls, fields: list[str], values: Iterable) -> "Row":
        row = tuple.__new__(cls, values)
        row.__fields__ = fields
        return row

    def asDict(self, recursive: bool = False) -> dict:
        if not hasattr(self, "__fields__"):
            raise TypeError("Cannot convert a Row class into dict")
        if not recursive:
            return dict(zip(self.__fields__, self))

        def convert(value: Any) -> Any:
            if isinstance(value, Row):
                return value.asDict(True)
            if isinstance(value, list):
                return [convert(v) for v in value]
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            return value
        return {k: convert(v) for k, v in zip(self.__fields__, self)}

    def __contains__(self, item: Any) -> bool:
        if hasattr(self, "__fields__"):
            return item in self.__fields__
        return tuple.__contains__(self, item)

    def __call__(self, *args: Any) -> "Row":
        """A row with these values, using this row's values as field names."""
        if len(args) > len(self):
            raise ValueError(f"Can not create Row with fields {self}, expected {len(self)} values "
                             f"but got {args}")
        return Row._from_fields(list(self), args)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (int, slice)):
            return tuple.__getitem__(self, item)
        try:
            index = self.__fields__.index(item)
        except (AttributeError, ValueError):
            raise ValueError(item) from None
        return tuple.__getitem__(self, index)

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        try:
            index = self.__fields__.index(item)
        except (AttributeError, ValueError):
            raise AttributeError(item) from None
        return tuple.__getitem__(self, index)

    def __setattr__(self, key: str, value: Any) -> None:
        if key != "__fields__":
            raise RuntimeError("Row is read-only")
        self.__dict__[key] = value

    def __reduce__(self):
        if hasattr(self, "__fields__"):
            return (Row._from_fields, (self.__fields__, tuple(self)))
        return (Row, tuple(self))

    def __repr__(self) -> str:
        if hasattr(self, "__fields__"):
            return "Row(" + ", ".join(f"{k}={v!r}" for k, v in zip(self.__fields__, self)) + ")"
        return "<Row(" + ", ".join(repr(v) for v in self) + ")>"

    def __eq__(self, other: object) -> bool:
        return tuple.__eq__(self, other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)
