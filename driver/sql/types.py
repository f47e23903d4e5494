"""Spark SQL's data types and ``Row`` (PySpark's ``pyspark.sql.types``).

Types print, compare and serialise to JSON as PySpark's do, so a schema
written for PySpark (``StructType([StructField("word", StringType())])`` or
the DDL string ``"word string, count bigint"``) means the same here.
Arrow is the physical representation of every type: ``to_arrow`` and
``from_arrow`` map between the two, and ``duckdb_name`` names the type in
the engine's SQL.
"""
from __future__ import annotations

import datetime
import decimal
import json
from typing import Any, Iterator

__all__ = [
    "DataType", "NullType", "StringType", "BinaryType", "BooleanType", "DateType", "TimestampType",
    "TimestampNTZType", "DecimalType", "DoubleType", "FloatType", "ByteType", "ShortType",
    "IntegerType", "LongType", "ArrayType", "MapType", "StructField", "StructType", "Row",
    "AtomicType", "NumericType", "IntegralType", "FractionalType", "DayTimeIntervalType",
]


class DataType:
    """The base of every Spark SQL type."""

    # Spark's names for the type where they are not the class name less "Type", lower-cased
    _type_name: str | None = None
    _simple_string: str | None = None  # DDL's name, where it is not typeName()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.__class__) and self.__dict__ == other.__dict__

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def typeName(cls) -> str:
        return cls._type_name or cls.__name__[:-4].lower()

    def simpleString(self) -> str:
        return self._simple_string or self.typeName()

    def jsonValue(self) -> Any:
        return self.typeName()

    def json(self) -> str:
        return json.dumps(self.jsonValue(), separators=(",", ":"), sort_keys=True)

    def needConversion(self) -> bool:
        return False

    def fromInternal(self, obj: Any) -> Any:
        return obj

    def toInternal(self, obj: Any) -> Any:
        return obj


class AtomicType(DataType):
    """Types that are not arrays, maps or structs."""


class NumericType(AtomicType):
    pass


class IntegralType(NumericType):
    pass


class FractionalType(NumericType):
    pass


class NullType(DataType):
    """The type of ``None`` literals (Spark prints it as ``void``)."""

    _type_name = "void"


class StringType(AtomicType):
    pass


class BinaryType(AtomicType):
    pass


class BooleanType(AtomicType):
    pass


class DateType(AtomicType):
    pass


class TimestampType(AtomicType):
    pass


class TimestampNTZType(AtomicType):
    _type_name = "timestamp_ntz"


class DayTimeIntervalType(AtomicType):
    _simple_string = "interval day to second"


class DecimalType(FractionalType):
    """Fixed-point numbers: ``precision`` digits, ``scale`` of them after the point."""

    def __init__(self, precision: int = 10, scale: int = 0):
        self.precision = precision
        self.scale = scale

    def simpleString(self) -> str:
        return f"decimal({self.precision},{self.scale})"

    def jsonValue(self) -> Any:
        return self.simpleString()

    def __repr__(self) -> str:
        return f"DecimalType({self.precision},{self.scale})"


class DoubleType(FractionalType):
    pass


class FloatType(FractionalType):
    pass


class ByteType(IntegralType):
    _simple_string = "tinyint"


class ShortType(IntegralType):
    _simple_string = "smallint"


class IntegerType(IntegralType):
    _simple_string = "int"


class LongType(IntegralType):
    _simple_string = "bigint"


class ArrayType(DataType):
    def __init__(self, elementType: DataType, containsNull: bool = True):
        self.elementType = elementType
        self.containsNull = containsNull

    def simpleString(self) -> str:
        return f"array<{self.elementType.simpleString()}>"

    def __repr__(self) -> str:
        return f"ArrayType({self.elementType!r}, {self.containsNull})"

    def jsonValue(self) -> Any:
        return {"type": "array", "elementType": self.elementType.jsonValue(),
                "containsNull": self.containsNull}


class MapType(DataType):
    def __init__(self, keyType: DataType, valueType: DataType, valueContainsNull: bool = True):
        self.keyType = keyType
        self.valueType = valueType
        self.valueContainsNull = valueContainsNull

    def simpleString(self) -> str:
        return f"map<{self.keyType.simpleString()},{self.valueType.simpleString()}>"

    def __repr__(self) -> str:
        return f"MapType({self.keyType!r}, {self.valueType!r}, {self.valueContainsNull})"

    def jsonValue(self) -> Any:
        return {"type": "map", "keyType": self.keyType.jsonValue(),
                "valueType": self.valueType.jsonValue(), "valueContainsNull": self.valueContainsNull}


class StructField(DataType):
    def __init__(self, name: str, dataType: DataType, nullable: bool = True,
                 metadata: dict | None = None):
        if not isinstance(name, str):
            raise TypeError(f"StructField name must be a str, got {type(name).__name__}")
        if not isinstance(dataType, DataType):
            raise TypeError(f"StructField dataType must be a DataType, got {dataType!r}")
        self.name = name
        self.dataType = dataType
        self.nullable = nullable
        self.metadata = metadata or {}

    def simpleString(self) -> str:
        return f"{self.name}:{self.dataType.simpleString()}"

    def __repr__(self) -> str:
        return f"StructField({self.name!r}, {self.dataType!r}, {self.nullable})"

    def jsonValue(self) -> Any:
        return {"name": self.name, "type": self.dataType.jsonValue(), "nullable": self.nullable,
                "metadata": self.metadata}


class StructType(DataType):
    """A row type: an ordered list of ``StructField``."""

    def __init__(self, fields: list[StructField] | None = None):
        self.fields = list(fields or [])
        self.names = [f.name for f in self.fields]

    def add(self, field: str | StructField, data_type: DataType | str | None = None,
            nullable: bool = True, metadata: dict | None = None) -> "StructType":
        if isinstance(field, StructField):
            self.fields.append(field)
        else:
            if data_type is None:
                raise ValueError("StructType.add needs a data type for a field given by name")
            if isinstance(data_type, str):
                data_type = parse_type(data_type)
            self.fields.append(StructField(field, data_type, nullable, metadata))
        self.names = [f.name for f in self.fields]
        return self

    def fieldNames(self) -> list[str]:
        return list(self.names)

    def __iter__(self) -> Iterator[StructField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, key: int | str) -> StructField:
        if isinstance(key, str):
            for field in self.fields:
                if field.name == key:
                    return field
            raise KeyError(f"No StructField named {key}")
        return self.fields[key]

    def simpleString(self) -> str:
        return "struct<" + ",".join(f.simpleString() for f in self.fields) + ">"

    def __repr__(self) -> str:
        return "StructType([" + ", ".join(repr(f) for f in self.fields) + "])"

    def jsonValue(self) -> Any:
        return {"type": "struct", "fields": [f.jsonValue() for f in self.fields]}

    def treeString(self, level: int | None = None) -> str:
        lines = ["root"]
        for field in self.fields:
            _tree_lines(lines, field.name, field.dataType, field.nullable, 1, level)
        return "\n".join(lines) + "\n"


def _tree_lines(lines: list[str], name: str, dtype: DataType, nullable: bool, depth: int,
                level: int | None, label: str = "nullable") -> None:
    if level is not None and depth > level:
        return
    prefix = " |   " * (depth - 1) + " |-- "
    # printSchema names types by typeName ("long", "integer"); decimals show their digits.
    kind = dtype.simpleString() if isinstance(dtype, DecimalType) else dtype.typeName()
    null_part = f" ({label} = {str(nullable).lower()})" if label else ""
    lines.append(f"{prefix}{name}: {kind}{null_part}")
    if isinstance(dtype, StructType):
        for field in dtype.fields:
            _tree_lines(lines, field.name, field.dataType, field.nullable, depth + 1, level)
    elif isinstance(dtype, ArrayType):
        _tree_lines(lines, "element", dtype.elementType, dtype.containsNull, depth + 1, level,
                    "containsNull")
    elif isinstance(dtype, MapType):
        _tree_lines(lines, "key", dtype.keyType, False, depth + 1, level, "")
        _tree_lines(lines, "value", dtype.valueType, dtype.valueContainsNull, depth + 1, level,
                    "valueContainsNull")


# Row lives in common: executors build rows too (df.rdd), and never import the driver.
from sluicegate.common.sql_row import Row  # noqa: E402


# -- DDL strings --------------------------------------------------------------------------

_SIMPLE = {
    "string": StringType, "varchar": StringType, "char": StringType, "text": StringType,
    "binary": BinaryType, "boolean": BooleanType, "bool": BooleanType, "date": DateType,
    "timestamp": TimestampType, "timestamp_ltz": TimestampType, "timestamp_ntz": TimestampNTZType,
    "double": DoubleType, "float": FloatType, "real": FloatType, "tinyint": ByteType,
    "byte": ByteType, "smallint": ShortType, "short": ShortType, "int": IntegerType,
    "integer": IntegerType, "bigint": LongType, "long": LongType, "void": NullType,
    "null": NullType,
}


def _split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` cut at ``sep`` outside <>, () and backquotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "`":
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _from_sqlglot(dtype) -> DataType:
    from sqlglot import exp
    kind = dtype.this
    T = exp.DataType.Type
    nested = [e for e in dtype.expressions]
    if kind == T.ARRAY:
        return ArrayType(_from_sqlglot(nested[0]) if nested else StringType())
    if kind == T.MAP:
        return MapType(_from_sqlglot(nested[0]), _from_sqlglot(nested[1]))
    if kind == T.STRUCT:
        fields = []
        for col in nested:
            fields.append(StructField(col.name, _from_sqlglot(col.args["kind"])))
        return StructType(fields)
    if kind == T.DECIMAL:
        params = [int(p.this.this) if hasattr(p.this, "this") else int(p.name) for p in nested]
        return DecimalType(*(params or [10, 0]))
    name = kind.value.lower()
    mapping = {"text": StringType, "varchar": StringType, "char": StringType, "nchar": StringType,
               "nvarchar": StringType, "varbinary": BinaryType, "binary": BinaryType,
               "timestamptz": TimestampType, "timestampltz": TimestampType,
               "timestampntz": TimestampNTZType, "datetime": TimestampType, "null": NullType,
               "unknown": NullType}
    cls = _SIMPLE.get(name) or mapping.get(name)
    if cls is None:
        raise ValueError(f"unsupported data type {name!r}")
    return cls()


def parse_type(text: str) -> DataType:
    """One data type in Spark's SQL syntax (``bigint``, ``array<string>``, ``decimal(10,2)``)."""
    simple = _SIMPLE.get(text.strip().lower())
    if simple is not None:
        return simple()
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError
    try:
        return _from_sqlglot(exp.DataType.build(text, dialect="spark"))
    except (ParseError, ValueError) as exc:
        from .errors import ParseException
        raise ParseException(f"[PARSE_SYNTAX_ERROR] Unable to parse data type {text!r}: {exc}") \
            from None
    except Exception as exc:  # noqa: BLE001 - sqlglot raises assorted errors on odd input
        del sqlglot
        from .errors import ParseException
        raise ParseException(f"[PARSE_SYNTAX_ERROR] Unable to parse data type {text!r}: {exc}") \
            from None


def parse_schema(text: str) -> DataType:
    """A DDL schema string: ``"a int, b string"``, ``"a: int, b: string"``, or one type."""
    parts = _split_top(text)
    fields = []
    for part in parts:
        if part.startswith("`"):
            end = part.index("`", 1)
            name, rest = part[1:end], part[end + 1:].lstrip(": ")
        else:
            head, _, rest = part.replace(":", " ", 1).partition(" ") if ":" in part.split(" ")[0] \
                else part.partition(" ")
            name = head.rstrip(":")
        rest = rest.strip()
        if not rest:
            if len(parts) == 1:
                return parse_type(part)
            from .errors import ParseException
            raise ParseException(f"[PARSE_SYNTAX_ERROR] Syntax error in schema {text!r}: "
                                 f"field {part!r} has no type")
        nullable = True
        if rest.upper().endswith("NOT NULL"):
            rest, nullable = rest[: -len("NOT NULL")].strip(), False
        fields.append(StructField(name, parse_type(rest), nullable))
    return StructType(fields)


# -- Python values ------------------------------------------------------------------------

def infer_type(value: Any) -> DataType:
    """The type PySpark infers for a Python value (int -> bigint, float -> double, ...)."""
    if value is None:
        return NullType()
    if isinstance(value, bool):
        return BooleanType()
    if isinstance(value, int):
        return LongType()
    if isinstance(value, float):
        return DoubleType()
    if isinstance(value, str):
        return StringType()
    if isinstance(value, (bytes, bytearray)):
        return BinaryType()
    if isinstance(value, decimal.Decimal):
        return DecimalType(38, 18)
    if isinstance(value, datetime.datetime):
        return TimestampType()
    if isinstance(value, datetime.date):
        return DateType()
    if isinstance(value, Row) and hasattr(value, "__fields__"):
        return StructType([StructField(k, infer_type(v)) for k, v in zip(value.__fields__, value)])
    if isinstance(value, dict):
        for k, v in value.items():
            if v is not None:
                return MapType(infer_type(k), infer_type(v))
        return MapType(NullType(), NullType())
    if isinstance(value, (list, tuple)):
        for v in value:
            if v is not None:
                return ArrayType(infer_type(v))
        return ArrayType(NullType())
    raise TypeError(f"[CANNOT_INFER_TYPE_FOR_FIELD] Unable to infer the type of {value!r} "
                    f"({type(value).__name__})")


def merge_types(a: DataType, b: DataType) -> DataType:
    """Two inferred types of one field across rows (None fills in; else they must agree)."""
    if isinstance(a, NullType):
        return b
    if isinstance(b, NullType) or a == b:
        return a
    if isinstance(a, ArrayType) and isinstance(b, ArrayType):
        return ArrayType(merge_types(a.elementType, b.elementType))
    if isinstance(a, MapType) and isinstance(b, MapType):
        return MapType(merge_types(a.keyType, b.keyType), merge_types(a.valueType, b.valueType))
    if isinstance(a, StructType) and isinstance(b, StructType):
        names = list(dict.fromkeys(a.names + b.names))
        fa, fb = {f.name: f.dataType for f in a}, {f.name: f.dataType for f in b}
        return StructType([StructField(n, merge_types(fa.get(n, NullType()), fb.get(n, NullType())))
                           for n in names])
    raise TypeError(f"[CANNOT_MERGE_TYPE] Can not merge type {a!r} and {b!r}")
