"""The operator tree one task runs, as the driver sends it to an executor.

The driver turns an RDD lineage into, per task, a concrete tree of these
nodes: every partition mapping (union, coalesce, cartesian) is already
resolved, so the executor only interprets. User functions appear as function
ids (``fn``): the closure bytes are shipped once per executor and cached
there, so a streaming job does not re-ship its closures every batch.

Sources read data, narrow nodes transform an iterator, and the sink decides
what happens to the stage's output (sent back, or written as shuffle blocks).
"""
from __future__ import annotations

from .records import WireRecord, wire_record


class PlanNode(WireRecord):
    """A node of a task's operator tree."""


class Sink(WireRecord):
    """What a task does with the iterator its plan produces."""


# -- sources -------------------------------------------------------------------

@wire_record(100)
class BlockSource(PlanNode):
    """A stored record batch: parallelized data, a received input block."""
    block_id: str


@wire_record(101)
class RangeSource(PlanNode):
    """``range(start, stop, step)``: parallelized ranges ship no data."""
    start: int
    stop: int
    step: int


@wire_record(102)
class FileSplitSource(PlanNode):
    """Lines whose first byte lies in ``[start, start + length)`` of a text file."""
    path: str
    start: int
    length: int


@wire_record(103)
class WholeFilesSource(PlanNode):
    """``(path, content)`` for each file."""
    paths: list[str]


@wire_record(104)
class BinaryRecordsSource(PlanNode):
    """Fixed-length byte records of a file."""
    path: str
    record_length: int


@wire_record(105)
class EmptySource(PlanNode):
    pass


@wire_record(118)
class KafkaRangeSource(PlanNode):
    """Records ``[from_offset, until_offset)`` of one Kafka topic-partition, fetched
    by the executor straight from the brokers (the direct stream, ``createRDD``).

    ``config`` is the client configuration; ``form`` is ``"utf8"`` (pairs of
    UTF-8-decoded key and value), ``"raw"`` (pairs of bytes) or ``"messages"``
    (``KafkaMessageAndMetadata``); ``poll_timeout_ms`` bounds how long the fetch
    may go without progress before the task fails."""
    topic: str
    partition: int
    from_offset: int
    until_offset: int
    config: dict
    form: str
    poll_timeout_ms: int


@wire_record(109)
class CachedBlockRef(PlanNode):
    """A cached partition: this executor's copy, else one from a holder's block service."""
    block_id: str
    holders: list  # [[executor_id, block_address], ...]


@wire_record(106)
class CheckpointSource(PlanNode):
    """A partition written by ``RDD.checkpoint()``."""
    path: str


@wire_record(107)
class Combiner(WireRecord):
    """combineByKey's three functions, as function ids."""
    create: int
    merge_value: int
    merge_combiners: int


@wire_record(108)
class ShuffleRead(PlanNode):
    """Reduce partition ``reduce_id`` of a shuffle, fetched from the map outputs.

    With ``combiner`` the pairs are aggregated: combiners are merged when the
    map side already combined, else values are combined from scratch.
    """
    shuffle_id: int
    reduce_id: int
    num_maps: int
    combiner: Combiner | None
    map_side_combined: bool


# -- narrow transformations ----------------------------------------------------

@wire_record(120)
class MapNode(PlanNode):
    fn: int
    child: PlanNode


@wire_record(121)
class FlatMapNode(PlanNode):
    fn: int
    child: PlanNode


@wire_record(122)
class FilterNode(PlanNode):
    fn: int
    child: PlanNode


@wire_record(123)
class MapPartitionsNode(PlanNode):
    """``fn(iterator)``, or ``fn(index, iterator)`` when ``index`` is not None."""
    fn: int
    index: int | None
    child: PlanNode


@wire_record(124)
class MapValuesNode(PlanNode):
    fn: int
    child: PlanNode


@wire_record(125)
class FlatMapValuesNode(PlanNode):
    fn: int
    child: PlanNode


@wire_record(126)
class ConcatNode(PlanNode):
    """Partitions one after another (coalesce)."""
    children: list[PlanNode]


@wire_record(127)
class CartesianNode(PlanNode):
    left: PlanNode
    right: PlanNode


@wire_record(128)
class CoGroupNode(PlanNode):
    """``(key, (values_of_child_0, values_of_child_1, ...))`` over co-partitioned children."""
    children: list[PlanNode]


@wire_record(129)
class CombineNode(PlanNode):
    """Combine pairs by key within the partition (input already partitioned)."""
    combiner: Combiner
    values_are_combiners: bool
    child: PlanNode


@wire_record(130)
class SortNode(PlanNode):
    """Sort pairs by ``key_fn(key)`` (or the key itself) within the partition."""
    key_fn: int | None
    ascending: bool
    child: PlanNode


@wire_record(131)
class PersistNode(PlanNode):
    """Read partition ``block_id`` from this executor's cache, else compute and keep it.

    ``level`` is StorageLevel as [use_disk, use_memory, use_off_heap,
    deserialized, replication].
    """
    block_id: str
    level: list[int]
    child: PlanNode


@wire_record(132)
class MapWithStateNode(PlanNode):
    """One batch of mapWithState for one partition: ``previous`` is the last
    state record (or, with ``previous_is_state`` false, initial pairs) and
    ``data`` this batch's pairs, both partitioned alike. Yields one StateRecord."""
    fn: int
    time_ms: int
    timeout_ms: int | None
    keep_versions: int
    previous_is_state: bool
    previous: PlanNode
    data: PlanNode


@wire_record(133)
class UpdateStateNode(PlanNode):
    """One batch of updateStateByKey for one partition: ``fn(new_values, last_state)``
    for every key in ``previous`` or ``data`` (co-partitioned); None drops the key.
    Without ``previous_is_state`` the previous pairs are an initial RDD (first
    value per key wins)."""
    fn: int
    previous_is_state: bool
    previous: PlanNode
    data: PlanNode


# -- sinks ---------------------------------------------------------------------

@wire_record(150)
class CollectSink(Sink):
    """Send the partition's records back to the driver."""


@wire_record(151)
class PartitionerSpec(WireRecord):
    """``hash``: portable_hash(key) % num; ``func``: fn(key) % num."""
    kind: str
    num_partitions: int
    fn: int | None


@wire_record(152)
class ShuffleWriteSink(Sink):
    """Hash the output into one block per reduce partition, kept on this executor."""
    shuffle_id: int
    map_id: int
    partitioner: PartitionerSpec
    combiner: Combiner | None
