"""What both sides must agree on: the wire protocol, the record serializer,
the portable partition hash, and CURVE authentication.

* every registered message and plan record survives ``encode``/``decode``;
  garbage of every kind raises ``ProtocolError`` and nothing else;
* record batches come back exactly (tuples stay tuples, str stays str...);
* ``portable_hash`` keeps equal keys together and spreads keys over partitions;
* cluster keys come from a long, private secret.

Across real processes and sockets (``portable_hash`` under other hash seeds,
CURVE refusing a peer without the secret): ``tests/engine/test_wire_agreement.py``.
"""
from __future__ import annotations

import dataclasses
import datetime
import decimal
import fractions
import importlib
import math
import pkgutil
import stat
import types
import typing
from collections import namedtuple

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sluicegate.common.protocol
import sluicegate.driver  # noqa: F401 - registers every record the driver knows
from sluicegate.common.auth import ClusterKeys, SecurityError, read_secret_file
from sluicegate.common.hashing import partition_of, portable_hash
from sluicegate.common.protocol import (
    MAGIC, PROTOCOL_VERSION, ProtocolError, WireRecord, decode, encode)
from sluicegate.common.protocol import executor as ex
from sluicegate.common.protocol import plan as p
from sluicegate.common.protocol.records import _BY_CODE
from sluicegate.common.serializer import (
    SerializationError, dump_lines, dump_pairs, dump_records, load_records)

# Every module of the protocol package registers its records on import.
for _module in pkgutil.iter_modules(sluicegate.common.protocol.__path__):
    importlib.import_module(f"sluicegate.common.protocol.{_module.name}")

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ALL_RECORDS = [cls for _, cls in sorted(_BY_CODE.items())]
PLAN_NODES = [cls for cls in ALL_RECORDS if issubclass(cls, p.PlanNode)]
SINKS = [cls for cls in ALL_RECORDS if issubclass(cls, p.Sink)]


# -- building records from their field annotations -------------------------------------

def _fields(cls) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_optional(hint) -> bool:
    return (typing.get_origin(hint) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(hint))


def _concrete(base: type) -> list[type]:
    return [cls for cls in ALL_RECORDS if issubclass(cls, base)]


msgpack_scalars = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1)
                   | st.floats(allow_nan=False) | st.text(st.characters(blacklist_categories=("Cs",)))
                   | st.binary(max_size=20))
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=5) | st.integers(-5, 5), inner, max_size=4),
    max_leaves=12)
wire_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
wire_int = st.integers(-(2 ** 63), 2 ** 63 - 1)


_STRATEGIES: dict = {}


def strategy_for(hint, depth: int = 0):
    """A hypothesis strategy producing valid values for a field annotation."""
    key = (hint, min(depth, 3))
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _build_strategy(hint, depth)
    return _STRATEGIES[key]


def _build_strategy(hint, depth: int):
    if _is_optional(hint):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.none() | strategy_for(inner, depth)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, WireRecord):
        options = [cls for cls in _concrete(hint)
                   if depth < 3 or not any(_mentions_record(h) for h in _fields(cls).values())]
        return st.deferred(lambda: st.one_of([records_of(cls, depth + 1) for cls in options]))
    if origin is list:
        return st.lists(strategy_for(args[0], depth), max_size=3)
    if hint is list:
        return st.lists(msgpack_values, max_size=3)
    if hint is dict:
        return st.dictionaries(st.integers(0, 10) | wire_text, msgpack_values, max_size=3)
    return {int: wire_int, str: wire_text, bool: st.booleans(),
            float: st.floats(allow_nan=False), bytes: st.binary(max_size=20)}[hint]


def _mentions_record(hint) -> bool:
    """Whether a field may hold a nested record (so leaf records can end the recursion)."""
    return any(isinstance(h, type) and issubclass(h, WireRecord)
               for h in (hint, *typing.get_args(hint)))


def records_of(cls, depth: int = 0):
    key = (cls, "record", min(depth, 4))
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _build_records_of(cls, depth)
    return _STRATEGIES[key]


def _build_records_of(cls, depth: int):
    fields = {}
    for name, hint in _fields(cls).items():
        fields[name] = (st.lists(st.binary(max_size=64), max_size=3) if name == "payload"
                        else strategy_for(hint, depth))
    return st.builds(cls, **fields)


any_record = st.one_of([records_of(cls) for cls in ALL_RECORDS])


def sample(cls):
    """One deterministic valid instance of ``cls`` (every field set, nested records too)."""
    values = {}
    for name, hint in _fields(cls).items():
        values[name] = [b"\x00payload", b""] if name == "payload" else _sample_value(hint, name)
    return cls(**values)


def _sample_value(hint, name: str):
    if _is_optional(hint):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _sample_value(inner, name)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, WireRecord):
        if hint is p.PlanNode:
            return p.MapNode(3, p.RangeSource(0, 10, 1))
        if hint is p.Sink:
            return p.ShuffleWriteSink(1, 2, p.PartitionerSpec("hash", 4, None), p.Combiner(1, 2, 3))
        return sample(hint)
    if origin is list:
        return [_sample_value(args[0], name), _sample_value(args[0], name)]
    if hint is list:
        return [[1, 2, 3], [4, 5, 6]]
    if hint is dict:
        return {0: [[0, "exec-1", "tcp://127.0.0.1:5000"]], "key": "value"}
    return {int: 2 ** 40 + 7, str: f"{name}-é中", bool: True, float: 2.5, bytes: b"\x01\x02"}[hint]


def _frames_equal(a: list, b: list) -> bool:
    return [bytes(x) for x in a] == [bytes(x) for x in b]


# -- protocol: round trips ------------------------------------------------------------------

def test_every_record_kind_is_covered():
    names = {cls.__name__ for cls in ALL_RECORDS}
    assert {"LaunchTask", "TaskSucceeded", "TaskFailed", "RegisterExecutor", "FetchBlocks",
            "BlocksReply", "ShuffleRead", "MapNode", "ShuffleWriteSink", "CollectSink"} <= names
    assert len(PLAN_NODES) >= 15 and len(SINKS) == 2


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda cls: cls.__name__)
def test_each_record_round_trips(cls):
    message = sample(cls)
    frames = encode(message)
    decoded = decode(frames)
    assert type(decoded) is cls and decoded == message
    if cls._has_payload:
        assert len(frames) == 1 + len(message.payload)
        assert decoded.payload == message.payload
    else:
        assert len(frames) == 1
    # Re-encoding gives the same bytes: nothing was lost or coerced on the way.
    assert _frames_equal(encode(decoded), frames)


def test_a_full_task_launch_round_trips():
    plan = p.PersistNode("rdd_3_1", [0, 1, 0, 1, 1], p.CoGroupNode([
        p.ShuffleRead(4, 1, 3, p.Combiner(7, 8, 9), True),
        p.MapPartitionsNode(5, 1, p.ConcatNode([
            p.FilterNode(6, p.BlockSource("data_0_1")),
            p.CartesianNode(p.FileSplitSource("/tmp/x.txt", 0, 100), p.EmptySource()),
            p.SortNode(None, False, p.CheckpointSource("/ck/rdd-1/part-00001")),
        ])),
    ]))
    message = ex.LaunchTask(11, 2, 0, 5, 1, plan, p.CollectSink(),
                            {4: [[0, "exec-1", "tcp://127.0.0.1:1"], [1, "exec-2", "tcp://h:2"]]},
                            [5, 6], ["data_0_1"], payload=[b"fn5", b"fn6", b"block"])
    decoded = decode(encode(message))
    assert decoded == message
    assert decoded.plan.child.children[0].combiner == p.Combiner(7, 8, 9)
    assert decoded.shuffle_locations[4][1] == [1, "exec-2", "tcp://h:2"]


@FUZZ
@given(any_record)
def test_any_record_round_trips(message):
    frames = encode(message)
    decoded = decode(frames)
    assert decoded == message and type(decoded) is type(message)
    assert _frames_equal(encode(decoded), frames)


def test_payload_frames_arrive_as_zmq_frames_too():
    message = ex.PushBlock("input-0-1", payload=[b"abc" * 1000])
    frames = [zmq.Frame(f) for f in encode(message)]
    decoded = decode(frames)
    assert decoded.block_id == "input-0-1" and bytes(decoded.payload[0]) == b"abc" * 1000


# -- protocol: garbage ------------------------------------------------------------------------

def _header(*items) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


def _valid_header_parts(message):
    return msgpack.unpackb(encode(message)[0], strict_map_key=False)


def test_no_frames_and_non_msgpack_garbage():
    for frames in ([], [b""], [b"\xc1"], [b"hello world"], [b"\xff" * 64],
                   [msgpack.packb([MAGIC, PROTOCOL_VERSION, 1, []]) + b"trailing"]):
        with pytest.raises(ProtocolError):
            decode(frames)


@FUZZ
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
def test_random_bytes_raise_protocol_error(frames):
    try:
        message = decode(frames)
    except ProtocolError:
        return
    # Only a frame that really is a message of this protocol may decode.
    assert isinstance(message, WireRecord)
    assert _frames_equal(encode(message)[:1], frames[:1])


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda cls: cls.__name__)
def test_every_truncation_raises_protocol_error(cls):
    header = encode(sample(cls))[0]
    for cut in range(len(header)):
        with pytest.raises(ProtocolError):
            decode([header[:cut]])


def test_wrong_magic_version_and_code():
    magic, version, code, fields, table = _valid_header_parts(ex.StopExecutor("bye"))
    assert decode([_header(magic, version, code, fields, table)]) == ex.StopExecutor("bye")
    cases = {
        "magic": _header(MAGIC + 1, version, code, fields, table),
        "magic type": _header("SG", version, code, fields, table),
        "version": _header(magic, PROTOCOL_VERSION + 1, code, fields, table),
        "old version": _header(magic, 0, code, fields, table),
        "unknown code": _header(magic, version, 9999, fields, table),
        "negative code": _header(magic, version, -1, fields, table),
        "code as text": _header(magic, version, "13", fields, table),
        "code as bool": _header(magic, version, True, fields, table),
        "fields not a list": _header(magic, version, code, {"reason": "bye"}, table),
        "too few fields": _header(magic, version, code, [], table),
        "too many fields": _header(magic, version, code, ["bye", "extra"], table),
        "records not a list": _header(magic, version, code, fields, {}),
        "a record not [code, fields]": _header(magic, version, code, fields, [5]),
        "header too short": _header(magic, version, code, fields),
        "header too long": _header(magic, version, code, fields, table, 0),
        "header is a map": msgpack.packb({"magic": magic}),
        "header is a scalar": msgpack.packb(42),
    }
    for name, header in cases.items():
        with pytest.raises(ProtocolError):
            decode([header])
        assert name  # (for the traceback)


def test_version_mismatch_says_so():
    magic, _, code, fields, table = _valid_header_parts(ex.StopExecutor("bye"))
    with pytest.raises(ProtocolError, match="version"):
        decode([_header(magic, PROTOCOL_VERSION + 1, code, fields, table)])


def _wrong_value(hint):
    """A value of the wrong wire type for a field annotated ``hint``."""
    if _is_optional(hint):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _wrong_value(inner)
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, WireRecord):
        return "not an index"
    if origin is list or hint is list:
        return "not a list"
    if hint is dict:
        return [1, 2]
    return {int: "7", str: 7, bool: 1, float: "2.5", bytes: "text"}[hint]


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=lambda cls: cls.__name__)
def test_wrong_field_types_raise_protocol_error(cls):
    magic, version, code, fields, table = _valid_header_parts(sample(cls))
    names = cls._wire_fields
    hints = _fields(cls)
    for index, name in enumerate(names):
        wrong = [_wrong_value(hints[name])]
        if not _is_optional(hints[name]):
            wrong.append(None)  # None where a value is required
        for bad in wrong:
            broken = list(fields)
            broken[index] = bad
            with pytest.raises(ProtocolError):
                decode([_header(magic, version, code, broken, table)])


def test_exact_scalar_types_are_enforced():
    # bool is not an int, an int is not a str, a float is not an int.
    with pytest.raises(ProtocolError):
        decode([_header(MAGIC, PROTOCOL_VERSION, p.RangeSource.wire_code, [True, 1, 1], [])])
    with pytest.raises(ProtocolError):
        decode([_header(MAGIC, PROTOCOL_VERSION, p.RangeSource.wire_code, [0.0, 1, 1], [])])
    with pytest.raises(ProtocolError):
        decode([_header(MAGIC, PROTOCOL_VERSION, ex.DropBlocks.wire_code, [["a", 1], [], []], [])])
    with pytest.raises(ProtocolError):  # str where bytes-like text expected is fine, bytes is not
        decode([_header(MAGIC, PROTOCOL_VERSION, ex.StopExecutor.wire_code, [b"bye"], [])])
    # An int where a float is declared is a number: accepted, as a float.
    beat = decode([_header(MAGIC, PROTOCOL_VERSION, ex.ExecutorRegistered.wire_code,
                           ["exec-1", 1, 10, {}], [])])
    assert beat.heartbeat_interval_s == 1.0 and type(beat.heartbeat_interval_s) is float


def test_nested_records_of_the_wrong_kind_raise_protocol_error():
    launch = sample(ex.LaunchTask)
    magic, version, code, fields, table = _valid_header_parts(launch)
    plan_index = ex.LaunchTask._wire_fields.index("plan")
    sink_index = ex.LaunchTask._wire_fields.index("sink")
    plan_at, sink_at = fields[plan_index], fields[sink_index]
    message_code = ex.StopExecutor.wire_code
    bad_cases = [
        ({plan_index: sink_at}, table),                     # a sink where a plan node goes
        ({sink_index: plan_at}, table),                     # a plan node where a sink goes
        ({plan_index: len(table)}, table),                  # an index past the table
        ({plan_index: -1}, table),                          # a negative index
        ({plan_index: "0"}, table),                         # not an index at all
        ({plan_index: len(table)}, table + [[message_code, ["x"]]]),  # a message inside a plan
        ({}, table + [[9999, []]]),                         # an unknown nested code
        ({}, table + [[p.MapNode.wire_code]]),              # not [code, fields]
        ({}, table + [[p.MapNode.wire_code, [1]]]),         # missing the child
        ({}, [[p.MapNode.wire_code, [1, 0]]] + table),      # a child that is not earlier
    ]
    for changes, records in bad_cases:
        broken = list(fields)
        for index, value in changes.items():
            broken[index] = value
        with pytest.raises(ProtocolError):
            decode([_header(magic, version, code, broken, records)])


def test_extra_frames_on_a_message_without_payload():
    frames = encode(ex.StopExecutor("bye"))
    assert decode(frames) == ex.StopExecutor("bye")
    with pytest.raises(ProtocolError, match="payload"):
        decode(frames + [b"smuggled"])
    with pytest.raises(ProtocolError):
        decode(encode(p.RangeSource(0, 1, 1)) + [b"", b""])


def test_lineage_of_any_depth_travels_but_raw_nesting_is_refused():
    # Plans travel as a flat table, children first: depth is no limit at all.
    table = [[p.EmptySource.wire_code, []]]
    for i in range(5000):
        table.append([p.MapNode.wire_code, [i, len(table) - 1]])
    table.append([p.CollectSink.wire_code, []])
    header = _header(MAGIC, PROTOCOL_VERSION, ex.LaunchTask.wire_code,
                     [1, 0, 0, 0, 0, len(table) - 2, len(table) - 1, {}, [], [], 0, {}], table)
    launch = decode([header])
    depth, node = 0, launch.plan
    while isinstance(node, p.MapNode):
        depth, node = depth + 1, node.child
    assert depth == 5000 and isinstance(node, p.EmptySource)
    # Deeply nested msgpack arrays in a header are garbage, refused as such.
    with pytest.raises(ProtocolError):
        decode([b"\x91" * 100_000 + b"\x00"])


@FUZZ
@given(any_record, st.data())
def test_mutated_fields_never_raise_anything_but_protocol_error(message, data):
    magic, version, code, fields, table = _valid_header_parts(message)
    if fields:
        index = data.draw(st.integers(0, len(fields) - 1))
        fields[index] = data.draw(msgpack_values)
    header = _header(magic, version, code, fields, table)
    try:
        decoded = decode([header, *encode(message)[1:]])
    except ProtocolError:
        return
    assert type(decoded) is type(message)


@FUZZ
@given(st.binary(min_size=1, max_size=400), st.data())
def test_flipped_bytes_in_a_valid_header(seed, data):
    header = bytearray(encode(sample(ex.LaunchTask))[0])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(header) - 1))
        header[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode([bytes(header), seed])
    except ProtocolError:
        return
    assert isinstance(decoded, WireRecord)


# -- serializer ---------------------------------------------------------------------------------

def assert_exactly(a, b) -> None:
    """Equal, and of the same types all the way down (1 != 1.0 != True here)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_exactly(x, y)
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for key in a:
            assert_exactly(a[key], b[key])
    else:
        assert a == b
        if isinstance(a, float):
            assert math.copysign(1, a) == math.copysign(1, b)


hashable_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text() | st.binary(max_size=20))
hashables = st.recursive(hashable_scalars, lambda inner: st.tuples(inner, inner)
                         | st.frozensets(inner, max_size=3), max_leaves=6)
records = st.recursive(
    hashable_scalars | st.floats(allow_nan=True) | st.integers(min_value=2 ** 64)
    | st.integers(max_value=-(2 ** 63) - 1) | st.datetimes() | st.decimals(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.tuples(inner) | st.dictionaries(hashables, inner, max_size=3)
    | st.sets(hashables, max_size=3),
    max_leaves=12)


@FUZZ
@given(st.lists(records, max_size=8))
def test_records_round_trip_exactly(batch):
    assert_exactly(load_records(dump_records(batch)), batch)


@FUZZ
@given(st.lists(st.tuples(records, records), max_size=8))
def test_pairs_round_trip_exactly(pairs):
    assert_exactly(load_records(dump_records(pairs)), pairs)
    keys = [k for k, _ in pairs]
    values = [v for _, v in pairs]
    assert_exactly(load_records(dump_pairs(keys, values)), pairs)


def test_serializer_keeps_the_tricky_cases():
    cases = [
        [],
        [None, True, False, 0, -1, 2 ** 63 - 1, -(2 ** 63), 2 ** 64 - 1],
        [2 ** 64, -(2 ** 63) - 1, 10 ** 40, -(10 ** 40)],           # big ints
        ["text", b"text", "", b"", "é中\U0001f600", "\udcff"],        # str vs bytes, lone surrogate
        [(1, 2), (3, 4)],                                          # pairs stay tuples
        [(1, (2, 3)), ("k", [4, (5, 6)])],                         # nested tuples in pairs
        [(1, 2, 3), ()],                                          # non-pair tuples
        [[1, [2, [3, (4,)]]]],                                     # tuple deep in lists
        [{"a": (1, 2)}, {(1, 2): "tuple key"}, {1: "int key", "1": "str key"}],
        [{1, 2}, frozenset({"a"}), bytearray(b"ba")],
        [1.0, -0.0, float("inf"), 1.5e308, 1],                     # float vs int kept
        [("k", None), (None, None)],
        [datetime.datetime(2024, 2, 29, 12, 0, 1, 5), datetime.date(2020, 1, 1)],
        [decimal.Decimal("1.10"), fractions.Fraction(1, 3), 1 + 2j],
        [[1, 2], (1, 2)],                                          # list then tuple
        [(1, 2), [1, 2]],                                          # pair then list
    ]
    for batch in cases:
        assert_exactly(load_records(dump_records(batch)), batch)


def test_serializer_uses_compact_formats_where_exact():
    assert dump_records([1, "a", b"b", None, [1.5]])[:1] == b"M"
    assert dump_records([("a", 1), ("b", 2)])[:1] == b"P"
    assert dump_records([(1, 2, 3)])[:1] == b"K"
    assert dump_records([2 ** 70])[:1] == b"K"


def test_lines_and_corrupt_batches():
    assert load_records(dump_lines(b"a b\r\nc\rd\n\ne")) == ["a b", "c", "d", "", "e"]
    assert load_records(dump_lines(b"")) == []
    for garbage in (b"", b"Z123", b"M\xc1", b"P\x93\x01", b"K not a pickle"):
        with pytest.raises(SerializationError):
            load_records(garbage)


def test_unserializable_record_is_a_clear_error():
    import threading
    with pytest.raises(SerializationError, match="lock"):
        dump_records([threading.Lock()])


# -- hashing -------------------------------------------------------------------------------------

def test_equal_keys_hash_equally():
    Point = namedtuple("Point", "x y")

    class Text(str):
        pass

    groups = [
        [1, 1.0, True, decimal.Decimal(1), fractions.Fraction(1, 1), complex(1, 0)],
        [0, 0.0, -0.0, False, decimal.Decimal(0)],
        [2 ** 80, float(2 ** 80)],
        [0.5, fractions.Fraction(1, 2), decimal.Decimal("0.5")],
        [(1, "a"), (1.0, "a"), (True, "a"), Point(1, "a")],
        ["key", Text("key")],
        [frozenset({1, 2}), frozenset({2.0, True})],
        [("x", None), ("x", None)],
    ]
    for group in groups:
        assert all(a == group[0] for a in group)
        assert len({portable_hash(v) for v in group}) == 1, group


def test_partition_of_is_in_range_and_spreads_keys():
    seen = [partition_of(f"key-{i}", 8) for i in range(4000)]
    assert set(seen) == set(range(8))
    assert min(seen.count(part) for part in range(8)) > 300
    assert all(0 <= partition_of(k, 3) < 3 for k in (-1, -(2 ** 80), None, ("a", -5), -0.5))


# -- authentication ---------------------------------------------------------------------------------

SECRET = b"0123456789abcdef-the-cluster-secret"
OTHER_SECRET = b"fedcba9876543210-another-secret!!"


def test_secrets_must_be_long_and_private(tmp_path):
    with pytest.raises(SecurityError):
        ClusterKeys.from_secret(b"short")
    keys = ClusterKeys.from_secret(SECRET)
    assert keys == ClusterKeys.from_secret(SECRET)
    assert keys != ClusterKeys.from_secret(OTHER_SECRET)
    assert keys.server_public != keys.client_public
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    path.chmod(0o644)
    with pytest.raises(SecurityError, match="chmod 600"):
        read_secret_file(path)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert read_secret_file(path) == SECRET
    path.write_bytes(b"  \n")
    with pytest.raises(SecurityError, match="empty"):
        read_secret_file(path)
    with pytest.raises(SecurityError):
        read_secret_file(tmp_path / "missing")
