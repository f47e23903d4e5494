"""State that spans the whole application: updateStateByKey and mapWithState.

Both keep their state RDD hash-partitioned and cached on the executors; a
batch joins the new data (shuffled into the same partitioning) with the
previous state where it lies, so the state never crosses the network. Both
need a checkpoint directory: every checkpoint interval (by default the first
multiple of the batch duration >= 10 s) the state is written there and its
lineage cut.

``updateStateByKey`` has PySpark's semantics: ``updateFunc(new_values,
last_state)`` runs for every key every batch; None removes the key.
``mapWithState`` (Spark's, beyond PySpark) touches only the keys of the
batch, and can time out idle keys.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sluicegate.common import taskfuncs as tf

from ..checkpoint.rdd_ref import CheckpointedRDD
from ..rdd.base import RDD
from ..rdd.lineage import MapWithStateBatch, UpdateStateBatch
from ..rdd.partitioner import Partitioner
from .inputs import CheckpointUnsupported
from .ops import StreamOp, to_datetime
from .stateless import arity

if TYPE_CHECKING:
    from .base import DStream


class _WithInitialState(StreamOp):
    """A state that each batch with data carries on, and that may start from an
    initial RDD; in a checkpoint that RDD travels as a reference to its checkpoint
    files."""

    # The partition count as the user gave it (None: the default); the class default
    # serves operators pickled before they recorded it.
    num_partitions: int | None = None

    def initial_rdd(self, sc) -> RDD | None:
        if isinstance(self.initial, CheckpointedRDD):
            self.initial = self.initial.restore(sc)
        return self.initial

    def compute(self, stream, time_ms):
        """The state after batch ``time_ms``: a batch without data keeps the previous
        state, a batch with data makes the next one (``next_state``)."""
        previous = stream._get_or_compute(time_ms - stream._slide_ms)
        new = self.parents[0]._get_or_compute(time_ms)
        if new is None:
            return previous
        return self.next_state(stream, time_ms, previous, new)

    def next_state(self, stream, time_ms: int, previous: RDD | None, new: RDD) -> RDD:
        """The state RDD made from the previous one (None: there is none yet) and the
        batch's data ``new``."""
        raise NotImplementedError

    def __getstate__(self):
        state = self.__dict__.copy()
        if isinstance(self.initial, RDD):
            if not self.initial.isCheckpointed():
                raise CheckpointUnsupported("the initial state RDD was not checkpointed")
            state["initial"] = CheckpointedRDD.of(self.initial)
        return state


class StateOp(_WithInitialState):
    """``update(previous_rdd_or_None, previous_is_state, new_rdd)`` every batch with
    data (the previous RDD is the last state, or else the initial RDD); a batch
    without data keeps the previous state."""

    def __init__(self, parent: "DStream", update: Callable, initial: RDD | None,
                 num_partitions: int | None = None):
        self.parents = [parent]
        self.update = update
        self.initial = initial
        self.num_partitions = num_partitions  # as the user gave it (None: the default)

    def shape(self) -> tuple[str, dict]:
        return "updateStateByKey", {"numPartitions": self.num_partitions,
                                    "initialRDD": self.initial is not None}

    def next_state(self, stream, time_ms, previous, new):
        if previous is not None:
            return self.update(previous, True, new)
        return self.update(self.initial_rdd(stream._sc), False, new)

    def describe(self):
        return "StateDStream"


class StateSpec:
    """How mapWithState runs (Spark's ``StateSpec``): build with ``StateSpec.function(f)``.

    ``f(key, value, state)`` (or ``f(time, key, value, state)``) is called for
    every record of a batch, and with ``value=None`` and
    ``state.isTimingOut()`` true when a key idle for ``timeout`` seconds is
    dropped; its return values form the mapped stream.
    """

    def __init__(self, fn: Callable):
        self.fn = fn
        self.initial_rdd = None
        self.num_partitions: int | None = None
        self.partitioner_: Partitioner | None = None
        self.timeout_ms: int | None = None

    @staticmethod
    def function(mappingFunction: Callable) -> "StateSpec":
        if not callable(mappingFunction):
            raise TypeError("StateSpec.function() needs a function")
        return StateSpec(mappingFunction)

    def initialState(self, rdd) -> "StateSpec":
        self.initial_rdd = rdd
        return self

    def numPartitions(self, numPartitions: int) -> "StateSpec":
        self.num_partitions = numPartitions
        return self

    def partitioner(self, partitioner: Partitioner) -> "StateSpec":
        self.partitioner_ = partitioner
        return self

    def timeout(self, idleDuration: float) -> "StateSpec":
        self.timeout_ms = int(round(float(idleDuration) * 1000))
        if self.timeout_ms <= 0:
            raise ValueError("timeout must be positive")
        return self


class MapWithStateOp(_WithInitialState):
    """The state RDD of mapWithState: one StateRecord per partition per batch."""

    def __init__(self, parent: "DStream", spec: StateSpec, partitioner: Partitioner,
                 initial: RDD | None):
        self.parents = [parent]
        self.fn = spec.fn
        self.timeout_ms = spec.timeout_ms
        self.partitioner = partitioner
        self.initial = initial
        self.four_args = arity(spec.fn) == 4
        # as the user gave it (None: the default parallelism)
        self.num_partitions = partitioner.numPartitions if spec.partitioner_ is not None \
            else spec.num_partitions

    def shape(self) -> tuple[str, dict]:
        return "mapWithState", {"numPartitions": self.num_partitions,
                                "timeout_ms": self.timeout_ms,
                                "initialState": self.initial is not None}

    def next_state(self, stream, time_ms, previous, new):
        n = self.partitioner.numPartitions
        data = new.partitionBy(n, self.partitioner.partitionFunc)
        fn = tf.WithTime(self.fn, to_datetime(time_ms)) if self.four_args else self.fn
        keep = max(2, stream._remember_ms // stream._slide_ms + 2)
        initial = self.initial_rdd(stream._sc)
        if previous is not None:
            lineage = MapWithStateBatch(previous, True, data, fn, time_ms, self.timeout_ms, keep)
        elif initial is not None:
            initial = initial.partitionBy(n, self.partitioner.partitionFunc)
            lineage = MapWithStateBatch(initial, False, data, fn, time_ms, self.timeout_ms, keep)
        else:
            lineage = MapWithStateBatch(None, False, data, fn, time_ms, self.timeout_ms, keep)
        return RDD(stream._sc, lineage, self.partitioner)

    def describe(self):
        return "MapWithStateDStream"


class StatefulOperations:
    def updateStateByKey(self: "DStream", updateFunc: Callable, numPartitions: int | None = None,
                         initialRDD=None) -> "DStream":
        """A stream of each key's state, updated every batch by
        ``updateFunc(new_values, last_state)``; returning None drops the key."""
        n = numPartitions if numPartitions is not None else self._sc.defaultParallelism
        if initialRDD is not None and not isinstance(initialRDD, RDD):
            initialRDD = self._sc.parallelize(initialRDD)
        partitioner = Partitioner(n)

        def update(previous: RDD | None, previous_is_state: bool, new: RDD) -> RDD:
            data = new.partitionBy(n)  # only the new data moves; the state stays put
            if previous is not None and previous.partitioner != partitioner:
                previous = previous.partitionBy(n)
            lineage = UpdateStateBatch(previous, previous_is_state, data, updateFunc)
            return RDD(new.context, lineage, partitioner)

        stream = self._stream(StateOp(self, update, initialRDD, numPartitions))
        stream.persist_default()
        stream._must_checkpoint = True
        return stream

    def mapWithState(self: "DStream", spec: StateSpec) -> "DStream":
        """Spark's mapWithState: a stream of what the spec's function returns
        for each record; ``.stateSnapshots()`` on it gives every key's state."""
        if not isinstance(spec, StateSpec):
            raise TypeError("mapWithState() needs a StateSpec (StateSpec.function(f))")
        partitioner = spec.partitioner_ or Partitioner(
            spec.num_partitions if spec.num_partitions is not None else self._sc.defaultParallelism)
        initial = spec.initial_rdd
        if initial is not None and not isinstance(initial, RDD):
            initial = self._sc.parallelize(initial)
        states = self._stream(MapWithStateOp(self, spec, partitioner, initial))
        states.persist_default()
        states._must_checkpoint = True
        mapped = states._derive(lambda t, rdd: rdd.flatMap(tf.mapped_records), kind="mapped")
        mapped._state_stream = states
        return mapped

    def stateSnapshots(self: "DStream") -> "DStream":
        """Every ``(key, state)`` after each batch (reads the whole state)."""
        states = self._state_stream
        if states is None:
            raise ValueError("stateSnapshots() is only defined on the stream mapWithState returns")
        return states._derive(lambda t, rdd: rdd.flatMap(tf.state_snapshot, True),
                              kind="stateSnapshots")
