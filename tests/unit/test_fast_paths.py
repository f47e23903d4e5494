"""The word count's fast paths keep PySpark's semantics.

* ``combine_by_key`` merges ``reduceByKey(add)`` with an inline ``+``: the
  same operation on the same operands as the user's function, and the same
  error (raised through the user's own function) when it fails.
* A receiver's large block interval is cut into one block per executor, in
  whole lines, losing and duplicating nothing; a small one stays one block.
"""
from __future__ import annotations

import operator
import traceback
from operator import add

import pytest

from sluicegate.common.serializer import load_records
from sluicegate.common.taskfuncs import identity
from sluicegate.driver.receivers.received_blocks import (SPREAD_MIN_BYTES, SPREAD_MIN_RECORDS,
                                                BlockGenerator, split_text)
from sluicegate.worker.shuffle.writer import adds, combine_by_key


def plus(a, b):
    return a + b


def reversed_plus(a, b):
    return b + a


K = 3


@pytest.mark.parametrize("fn, expected", [
    (operator.add, True), (plus, True), (lambda x, y: x + y, True),
    (reversed_plus, False), (lambda a, b: a - b, False), (lambda a, b: a + b + K, False),
    (lambda a, b=0: a + b, False), (lambda a, b: max(a, b), False), (len, False),
])
def test_adds_recognises_only_plain_addition(fn, expected):
    assert adds(fn) is expected


@pytest.mark.parametrize("merge", [operator.add, plus, reversed_plus, lambda a, b: a * 10 + b])
def test_combine_by_key_matches_a_plain_fold(merge):
    pairs = [("a", 1), ("b", 2), ("a", 3), (None, 4), ("a", 5), (b"k", 6), ("b", 7)]
    expected: dict = {}
    for key, value in pairs:
        expected[key] = merge(expected[key], value) if key in expected else value
    assert combine_by_key(iter(pairs), identity, merge) == expected


def test_inline_addition_keeps_operand_order_and_types():
    pairs = [("s", "x"), ("s", "y"), ("l", [1]), ("l", [2]), ("t", (1,)), ("t", (2,)),
             ("f", 0.5), ("f", 1), ("b", bytearray(b"a")), ("b", b"c")]
    combined = combine_by_key(iter(pairs), identity, lambda a, b: a + b)
    assert combined == {"s": "xy", "l": [1, 2], "t": (1, 2), "f": 1.5, "b": bytearray(b"ac")}
    assert type(combined["b"]) is bytearray
    first = [0]
    combine_by_key(iter([("k", first), ("k", [1])]), identity, add)
    assert first == [0], "a + b must make a new value, never extend the first in place"


def test_an_inline_addition_that_fails_raises_through_the_users_function():
    def my_merge(a, b):
        return a + b

    with pytest.raises(TypeError, match="unsupported operand") as failure:
        combine_by_key(iter([("k", 1), ("k", "one")]), identity, my_merge)
    assert "my_merge" in "".join(traceback.format_tb(failure.value.__traceback__))


def test_records_that_are_not_pairs_are_named_as_such():
    with pytest.raises(TypeError, match=r"needs \(key, value\) pairs"):
        combine_by_key(iter([("k", 1), "not a pair!"]), identity, add)


def test_split_text_keeps_whole_lines_and_every_byte():
    lines = [f"line {i} " + "x" * (i % 37) for i in range(5000)]
    text = ("\n".join(lines) + "\n").encode()
    for pieces in (1, 2, 3, 7):
        parts = split_text(text, pieces)
        assert b"".join(parts) == text
        assert 1 <= len(parts) <= pieces
        assert all(part.endswith(b"\n") for part in parts)
        if pieces > 1:
            sizes = [len(part) for part in parts]
            assert max(sizes) < 2 * min(sizes)
    assert split_text(b"one line\n", 4) == [b"one line\n"]


def cut_once(spread: int, text: bytes = b"", lines: int = 0, records: list | None = None):
    blocks = []
    generator = BlockGenerator(0, 10.0, 0, blocks.append, spread=lambda: spread)
    if text:
        generator.add_text(text, lines)
    if records:
        generator.add_records(records)
    generator.cut()
    return blocks


def test_a_large_interval_becomes_one_block_per_executor():
    lines = [f"{i} the quick brown fox" for i in range(20_000)]
    text = ("\n".join(lines) + "\n").encode()
    assert len(text) > 4 * SPREAD_MIN_BYTES
    blocks = cut_once(3, text, len(lines))
    assert len(blocks) == 3
    assert sum(b.num_records for b in blocks) == len(lines)
    assert [line for b in blocks for line in load_records(b.data)] == lines
    assert all(b.num_records == len(load_records(b.data)) for b in blocks)

    records = list(range(5 * SPREAD_MIN_RECORDS))
    blocks = cut_once(2, records=records)
    assert len(blocks) == 2
    assert [r for b in blocks for r in load_records(b.data)] == records


def test_a_small_interval_stays_one_block():
    assert len(cut_once(4, b"a few\nlines\n", 2)) == 1
    assert len(cut_once(4, records=list(range(SPREAD_MIN_RECORDS - 1)))) == 1
    assert len(cut_once(1, ("x\n" * 200_000).encode(), 200_000)) == 1
