"""Spark's type rules, and how each Spark type is named in Arrow and in the engine's SQL.

``common_type`` is Spark's widening for arithmetic, comparisons, CASE
branches and unions (byte < short < int < bigint < decimal < float < double;
a string meeting a number becomes a double); ``to_arrow``/``from_arrow``
map types to the physical Arrow types partitions are stored in; ``sql_type``
names a type in DuckDB's SQL, which the per-partition engine runs.
"""
from __future__ import annotations

from typing import Callable, Iterable

from . import types as T

_NUMERIC_ORDER = [T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.DecimalType, T.FloatType,
                  T.DoubleType]
_INTEGRAL_DIGITS = {T.ByteType: 3, T.ShortType: 5, T.IntegerType: 10, T.LongType: 20}


def is_numeric(t: T.DataType) -> bool:
    return isinstance(t, T.NumericType)


def is_integral(t: T.DataType) -> bool:
    return isinstance(t, T.IntegralType)


def _rank(t: T.DataType) -> int:
    for i, cls in enumerate(_NUMERIC_ORDER):
        if isinstance(t, cls):
            return i
    return -1


def as_decimal(t: T.DataType) -> T.DecimalType:
    if isinstance(t, T.DecimalType):
        return t
    return T.DecimalType(_INTEGRAL_DIGITS.get(type(t), 38), 0)


def wider_decimal(a: T.DecimalType, b: T.DecimalType) -> T.DecimalType:
    scale = max(a.scale, b.scale)
    digits = max(a.precision - a.scale, b.precision - b.scale)
    return T.DecimalType(min(38, digits + scale), scale)


def common_type(a: T.DataType, b: T.DataType) -> T.DataType | None:
    """The type both sides are cast to, or None when they do not mix."""
    if a == b:
        return a
    if isinstance(a, T.NullType):
        return b
    if isinstance(b, T.NullType):
        return a
    if is_numeric(a) and is_numeric(b):
        if isinstance(a, T.DecimalType) or isinstance(b, T.DecimalType):
            if isinstance(a, (T.FloatType, T.DoubleType)) or isinstance(b, (T.FloatType, T.DoubleType)):
                return T.DoubleType()
            return wider_decimal(as_decimal(a), as_decimal(b))
        return a if _rank(a) >= _rank(b) else b
    if isinstance(a, T.StringType) and is_numeric(b) or isinstance(b, T.StringType) and is_numeric(a):
        return T.DoubleType() if not (is_integral(a) or is_integral(b)) else T.LongType()
    dates = (T.DateType, T.TimestampType, T.TimestampNTZType)
    if isinstance(a, dates) and isinstance(b, dates):
        return T.TimestampType()
    if isinstance(a, T.StringType) and isinstance(b, dates):
        return b
    if isinstance(b, T.StringType) and isinstance(a, dates):
        return a
    if isinstance(a, T.ArrayType) and isinstance(b, T.ArrayType):
        inner = common_type(a.elementType, b.elementType)
        return T.ArrayType(inner, a.containsNull or b.containsNull) if inner is not None else None
    return None


# -- Arrow ------------------------------------------------------------------------------------

def common_type_of(types: Iterable[T.DataType],
                   mismatch: Callable[[T.DataType, T.DataType], Exception]) -> T.DataType:
    """The type all of ``types`` widen to (CASE values, UNION columns, ``in`` lists); when
    two do not, ``mismatch(the type so far, the next type)`` is raised."""
    found = iter(types)
    t = next(found)
    for other in found:
        widened = common_type(t, other)
        if widened is None:
            raise mismatch(t, other)
        t = widened
    return t


def to_arrow(t: T.DataType):
    import pyarrow as pa
    simple = {
        T.StringType: pa.string(), T.BinaryType: pa.binary(), T.BooleanType: pa.bool_(),
        T.DateType: pa.date32(), T.TimestampType: pa.timestamp("us"),
        T.TimestampNTZType: pa.timestamp("us"), T.DoubleType: pa.float64(),
        T.FloatType: pa.float32(), T.ByteType: pa.int8(), T.ShortType: pa.int16(),
        T.IntegerType: pa.int32(), T.LongType: pa.int64(), T.NullType: pa.null(),
        T.DayTimeIntervalType: pa.duration("us"),
    }
    found = simple.get(type(t))
    if found is not None:
        return found
    if isinstance(t, T.DecimalType):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, T.ArrayType):
        return pa.list_(to_arrow(t.elementType))
    if isinstance(t, T.MapType):
        return pa.map_(to_arrow(t.keyType), to_arrow(t.valueType))
    if isinstance(t, T.StructType):
        return pa.struct([pa.field(f.name, to_arrow(f.dataType), f.nullable) for f in t.fields])
    raise TypeError(f"no Arrow type for {t!r}")


def from_arrow(a) -> T.DataType:
    import pyarrow as pa
    import pyarrow.types as pt
    if pt.is_string(a) or pt.is_large_string(a) or getattr(pt, "is_string_view", lambda _: False)(a):
        return T.StringType()
    if pt.is_binary(a) or pt.is_large_binary(a) or pt.is_fixed_size_binary(a):
        return T.BinaryType()
    if pt.is_boolean(a):
        return T.BooleanType()
    if pt.is_int8(a) or pt.is_uint8(a):
        return T.ByteType() if pt.is_int8(a) else T.ShortType()
    if pt.is_int16(a) or pt.is_uint16(a):
        return T.ShortType() if pt.is_int16(a) else T.IntegerType()
    if pt.is_int32(a) or pt.is_uint32(a):
        return T.IntegerType() if pt.is_int32(a) else T.LongType()
    if pt.is_int64(a) or pt.is_uint64(a):
        return T.LongType() if pt.is_int64(a) else T.DecimalType(20, 0)
    if pt.is_float64(a):
        return T.DoubleType()
    if pt.is_float32(a) or pt.is_float16(a):
        return T.FloatType()
    if pt.is_decimal(a):
        return T.DecimalType(min(38, a.precision), a.scale)
    if pt.is_date(a):
        return T.DateType()
    if pt.is_timestamp(a):
        return T.TimestampType()
    if pt.is_null(a):
        return T.NullType()
    if pt.is_duration(a):
        return T.DayTimeIntervalType()
    if pt.is_dictionary(a):
        return from_arrow(a.value_type)
    if pt.is_map(a):
        return T.MapType(from_arrow(a.key_type), from_arrow(a.item_type))
    if pt.is_list(a) or pt.is_large_list(a) or pt.is_fixed_size_list(a):
        return T.ArrayType(from_arrow(a.value_type))
    if pt.is_struct(a):
        return T.StructType([T.StructField(a.field(i).name, from_arrow(a.field(i).type),
                                           a.field(i).nullable) for i in range(a.num_fields)])
    del pa
    raise TypeError(f"no Spark type for Arrow type {a}")


# -- the engine's SQL -------------------------------------------------------------------------

def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_type(t: T.DataType) -> str:
    simple = {
        T.StringType: "VARCHAR", T.BinaryType: "BLOB", T.BooleanType: "BOOLEAN", T.DateType: "DATE",
        T.TimestampType: "TIMESTAMP", T.TimestampNTZType: "TIMESTAMP", T.DoubleType: "DOUBLE",
        T.FloatType: "FLOAT", T.ByteType: "TINYINT", T.ShortType: "SMALLINT",
        T.IntegerType: "INTEGER", T.LongType: "BIGINT", T.NullType: "INTEGER",
        T.DayTimeIntervalType: "INTERVAL",
    }
    found = simple.get(type(t))
    if found is not None:
        return found
    if isinstance(t, T.DecimalType):
        return f"DECIMAL({t.precision},{t.scale})"
    if isinstance(t, T.ArrayType):
        return sql_type(t.elementType) + "[]"
    if isinstance(t, T.MapType):
        return f"MAP({sql_type(t.keyType)}, {sql_type(t.valueType)})"
    if isinstance(t, T.StructType):
        return "STRUCT(" + ", ".join(f"{quote(f.name)} {sql_type(f.dataType)}" for f in t.fields) + ")"
    raise TypeError(f"no engine type for {t!r}")
