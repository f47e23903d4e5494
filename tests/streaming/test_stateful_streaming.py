"""State (updateStateByKey, mapWithState), batch by batch, and its checkpoints
over many batches.

Each test feeds a queueStream through ``streaming_harness`` (a manual clock
steps the batches) and compares every batch's output with values worked out
by hand or by a plain-Python model of PySpark's semantics (``stream_models``),
including the batches after the input ends (state functions keep being called).

State checkpoints: the checkpoint directory stays bounded over many batches
and across a restart with ``getOrCreate`` (data directories the restored
metadata does not reference are deleted). Windows are in
``test_windowed_streams.py``.
"""
from __future__ import annotations

import datetime
import re
from operator import add, sub
from pathlib import Path

import pytest

from sluicegate.common.hashing import portable_hash
from sluicegate.common.keyed_state import State
from sluicegate.driver import ManualClock, Partitioner, StateSpec, StreamingContext
from sluicegate.driver.checkpoint import metadata
from stream_models import model_map_with_state, model_update_state, word_batches
from streaming_harness import BatchWaiter, run_batches

pytestmark = pytest.mark.usefixtures("shared_context")


def at(seconds: float) -> datetime.datetime:
    """A batch time as PySpark shows it (local time; the manual clock starts at 0)."""
    return datetime.datetime.fromtimestamp(seconds)


# -- updateStateByKey -----------------------------------------------------------------------------

def append_values(new_values, last):
    """PySpark's test updater: extends the state list (in place, as its tests do)."""
    if not last:
        last = []
    last.extend(new_values)
    return last


def test_update_state_by_key_as_pyspark(sc, checkpointed):
    inputs = [[("k", i)] for i in range(5)]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(append_values), num_batches=7,
                      configure=checkpointed)
    expected = [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    # The state is carried through the empty batches after the input ends.
    assert got == [[("k", v)] for v in expected + [expected[-1]] * 2]


def test_update_state_by_key_in_place_updates_leave_earlier_states_alone(sc, checkpointed):
    # append_values extends its argument; a window over the state stream still sees
    # each batch's state as it was (PySpark hands the function a fresh copy).
    inputs = [[("k", i)] for i in range(4)]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(append_values).window(2, 1),
                      num_batches=5, configure=checkpointed)
    assert got == [[("k", [0])], [("k", [0]), ("k", [0, 1])], [("k", [0, 1]), ("k", [0, 1, 2])],
                   [("k", [0, 1, 2]), ("k", [0, 1, 2, 3])],
                   [("k", [0, 1, 2, 3]), ("k", [0, 1, 2, 3])]]


def test_update_state_by_key_runs_every_key_every_batch(sc, checkpointed):
    # State (total, calls): a key's function runs every batch once it exists, data or not.
    def update(values, last):
        total, calls = last or (0, 0)
        return (total + sum(values), calls + 1)

    inputs = [[("a", 1), ("b", 2), ("a", 3)], [], [("b", 1)], [], [], [("c", 5)]]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(update), num_batches=8,
                      sort=True, configure=checkpointed)
    assert got == model_update_state(inputs, 8, update)
    assert got[-1] == [("a", (4, 8)), ("b", (3, 8)), ("c", (5, 3))]


def test_update_state_by_key_none_removes_the_key(sc, checkpointed):
    def update(values, last):
        if -1 in values:
            return None
        return (last or 0) + sum(values)

    inputs = [[("a", 1), ("b", 1)], [("a", 2), ("b", -1)], [("b", 4)], [("a", -1)], [],
              [("a", 7)]]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(update), num_batches=7,
                      sort=True, configure=checkpointed)
    assert got == [[("a", 1), ("b", 1)], [("a", 3)], [("a", 3), ("b", 4)], [("b", 4)],
                   [("b", 4)], [("a", 7), ("b", 4)], [("a", 7), ("b", 4)]]


@pytest.mark.parametrize("as_rdd", [False, True], ids=["list", "rdd"])
def test_update_state_by_key_initial_rdd(sc, checkpointed, as_rdd):
    initial = [("k", [0, 1]), ("only_initial", [9])]
    if as_rdd:
        initial = sc.parallelize(initial, 1)
    inputs = [[("k", i)] for i in range(2, 5)]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(append_values, initialRDD=initial),
                      num_batches=4, sort=True, configure=checkpointed)
    assert got == [[("k", [0, 1, 2]), ("only_initial", [9])],
                   [("k", [0, 1, 2, 3]), ("only_initial", [9])],
                   [("k", [0, 1, 2, 3, 4]), ("only_initial", [9])],
                   [("k", [0, 1, 2, 3, 4]), ("only_initial", [9])]]


def test_update_state_by_key_num_partitions(sc, checkpointed):
    inputs = [[(w, 1) for w in "abcdefg"], [(w, 1) for w in "aceg"]]
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(
        lambda vs, last: (last or 0) + sum(vs), numPartitions=5).glom(), num_batches=3,
        configure=checkpointed)
    for parts in got:
        assert len(parts) == 5
        for index, part in enumerate(parts):
            assert all(portable_hash(k) % 5 == index for k, _ in part)
    assert sorted(r for part in got[-1] for r in part) == \
        [("a", 2), ("b", 1), ("c", 2), ("d", 1), ("e", 2), ("f", 1), ("g", 2)]


def test_update_state_by_key_over_many_batches_matches_the_model(sc, checkpointed):
    # 16 batches of 1 s: the state is checkpointed (lineage cut) at the default 10 s.
    def update(values, last):
        total = (last or 0) + sum(values)
        return None if total > 40 else total  # big totals are dropped and start again

    inputs = word_batches(seed=23, batches=13, keys="abcdefgh", per_batch=8)
    got = run_batches(sc, inputs, lambda s: s.updateStateByKey(update), num_batches=16,
                      sort=True, configure=checkpointed)
    assert got == model_update_state(inputs, 16, update)


@pytest.mark.parametrize("operation", ["updateStateByKey", "mapWithState", "reduceByKeyAndWindow"])
def test_state_without_checkpoint_directory_fails_at_start(sc, operation):
    sc._checkpoint_dir = None  # as PySpark, the SparkContext's directory alone would do
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    try:
        pairs = ssc.queueStream([[("a", 1)]])
        if operation == "updateStateByKey":
            stream = pairs.updateStateByKey(lambda vs, last: sum(vs) + (last or 0))
        elif operation == "mapWithState":
            stream = pairs.mapWithState(StateSpec.function(lambda k, v, st: v))
        else:
            stream = pairs.reduceByKeyAndWindow(add, sub, 5, 1)
        stream.foreachRDD(lambda rdd: None)
        with pytest.raises(ValueError, match=r"checkpoint directory has not been set.*"
                                             r"StreamingContext\.checkpoint\(\)"):
            ssc.start()
        assert StreamingContext.getActive() is None
    finally:
        ssc.stop(stopSparkContext=False)


# -- mapWithState --------------------------------------------------------------------------------

def running_total(key, value, state):
    total = (state.getOption() or 0) + value
    state.update(total)
    return (key, total)


def total_or_timeout(key, value, state):
    if state.isTimingOut():
        return ("timeout", key, state.get())
    return running_total(key, value, state)


def with_snapshots(spec: StateSpec):
    """``op`` for run_batches: mapped records tagged "out", snapshots tagged "state"."""
    def op(stream):
        mapped = stream.mapWithState(spec)
        return mapped.map(lambda r: ("out", r)).union(
            mapped.stateSnapshots().map(lambda kv: ("state", kv)))
    return op


def split_tagged(batches: list[list]) -> list[tuple[list, list]]:
    return [(sorted(r for tag, r in b if tag == "out"), sorted(r for tag, r in b if tag == "state"))
            for b in batches]


def test_map_with_state_mapped_output_and_snapshots(sc, checkpointed):
    inputs = [[("a", 1), ("b", 2)], [("b", 5), ("a", 3)], [], [("c", 1), ("a", 1), ("c", 1)]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(running_total)),
                                   num_batches=5, configure=checkpointed))
    assert got == [
        ([("a", 1), ("b", 2)], [("a", 1), ("b", 2)]),
        ([("a", 4), ("b", 7)], [("a", 4), ("b", 7)]),
        ([], [("a", 4), ("b", 7)]),  # a batch without data: no output, same state
        ([("a", 5), ("c", 1), ("c", 2)], [("a", 5), ("b", 7), ("c", 2)]),
        ([], [("a", 5), ("b", 7), ("c", 2)]),
    ]
    assert got == model_map_with_state(inputs, 5, running_total)


def test_map_with_state_remove(sc, checkpointed):
    def fn(key, value, state):
        existed = state.exists()
        if value == "del":
            state.remove()
            return (key, "removed", existed, state.exists())
        state.update((state.getOption() or "") + value)
        return (key, state.get(), existed)

    inputs = [[("a", "x"), ("b", "y")], [("a", "del")], [("a", "z"), ("b", "del")], [("c", "del")]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(fn)),
                                   num_batches=4, configure=checkpointed))
    assert got == [
        ([("a", "x", False), ("b", "y", False)], [("a", "x"), ("b", "y")]),
        ([("a", "removed", True, False)], [("b", "y")]),
        ([("a", "z", False), ("b", "removed", True, False)], [("a", "z")]),
        ([("c", "removed", False, False)], [("a", "z")]),
    ]


def test_map_with_state_timeouts(sc, checkpointed):
    def fn(key, value, state):
        if state.isTimingOut():
            refusals = []
            for attempt in (lambda: state.update(0), state.remove):
                try:
                    attempt()
                except ValueError as exc:
                    refusals.append(str(exc))
            return ("timeout", key, value, state.get(), len(refusals))
        return running_total(key, value, state)

    inputs = [[("a", 1), ("b", 2)], [("a", 3)], [("a", 1)], [], [], [("b", 5)], [("c", 1)]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(fn).timeout(2)),
                                   num_batches=10, configure=checkpointed))
    assert got == [
        ([("a", 1), ("b", 2)], [("a", 1), ("b", 2)]),
        ([("a", 4)], [("a", 4), ("b", 2)]),
        ([("a", 5)], [("a", 5), ("b", 2)]),
        # b, last seen at 1 s, is idle more than 2 s at 4 s: one last call, then gone.
        ([("timeout", "b", None, 2, 2)], [("a", 5)]),
        ([], [("a", 5)]),
        ([("b", 5), ("timeout", "a", None, 5, 2)], [("b", 5)]),  # b starts afresh
        ([("c", 1)], [("b", 5), ("c", 1)]),
        ([], [("b", 5), ("c", 1)]),
        ([("timeout", "b", None, 5, 2)], [("c", 1)]),
        ([("timeout", "c", None, 1, 2)], []),
    ]
    assert got == model_map_with_state(inputs, 10, fn, timeout_batches=2)


@pytest.mark.parametrize("as_rdd", [False, True], ids=["list", "rdd"])
def test_map_with_state_initial_state(sc, checkpointed, as_rdd):
    initial = [("a", 100), ("z", 7)]
    if as_rdd:
        initial = sc.parallelize(initial, 2)
    spec = StateSpec.function(total_or_timeout).initialState(initial).timeout(3)
    inputs = [[("a", 1)], [("b", 2)], [], [("a", 1)]]
    got = split_tagged(run_batches(sc, inputs, with_snapshots(spec), num_batches=6,
                                   configure=checkpointed))
    assert got[0] == ([("a", 101)], [("a", 101), ("z", 7)])
    assert got[1] == ([("b", 2)], [("a", 101), ("b", 2), ("z", 7)])
    assert got[2] == ([], [("a", 101), ("b", 2), ("z", 7)])
    # Initial keys count as seen at the first batch: z, never touched, times out at 5 s.
    assert got[3] == ([("a", 102)], [("a", 102), ("b", 2), ("z", 7)])
    assert got[4] == ([("timeout", "z", 7)], [("a", 102), ("b", 2)])
    assert got[5] == ([("timeout", "b", 2)], [("a", 102)])
    assert got == model_map_with_state(inputs, 6, total_or_timeout, timeout_batches=3,
                                       initial=[("a", 100), ("z", 7)])


def test_map_with_state_four_argument_function(sc, checkpointed):
    def fn(time, key, value, state):
        state.update((state.getOption() or 0) + 1)
        return (time, key, value, state.get())

    inputs = [[("a", "x")], [("a", "y"), ("b", "z")]]
    got = run_batches(sc, inputs, lambda s: s.mapWithState(StateSpec.function(fn)),
                      batch_s=0.5, num_batches=2, sort=True, configure=checkpointed)
    assert got == [[(at(0.5), "a", "x", 1)], [(at(1.0), "a", "y", 2), (at(1.0), "b", "z", 1)]]


def test_map_with_state_partitions(sc, checkpointed):
    def op(stream):
        return stream.mapWithState(StateSpec.function(running_total).numPartitions(4)) \
            .stateSnapshots().glom()

    got = run_batches(sc, [[(w, 1) for w in "abcdefgh"]], op, num_batches=1,
                      configure=checkpointed)
    assert len(got[0]) == 4
    for index, part in enumerate(got[0]):
        assert all(portable_hash(k) % 4 == index for k, _ in part)
    assert sorted(r for part in got[0] for r in part) == [(w, 1) for w in "abcdefgh"]

    def by_partitioner(stream):
        spec = StateSpec.function(running_total).partitioner(Partitioner(2))
        return stream.mapWithState(spec).stateSnapshots().glom()

    got = run_batches(sc, [[(w, 1) for w in "abcdefgh"]], by_partitioner, num_batches=1,
                      configure=checkpointed)
    assert len(got[0]) == 2


def test_map_with_state_over_many_batches_matches_the_model(sc, checkpointed):
    # 16 batches: state versions are folded and the state is checkpointed at 10 s.
    def fn(key, value, state):
        if state.isTimingOut():
            return ("timeout", key, state.get())
        if value == 5:
            state.remove()
            return ("removed", key)
        total = (state.getOption() or 0) + value
        state.update(total)
        return (key, total)

    inputs = word_batches(seed=31, batches=12, keys="abcdefghijk", per_batch=5, distinct=True)
    got = split_tagged(run_batches(sc, inputs, with_snapshots(StateSpec.function(fn).timeout(3)),
                                   num_batches=16, configure=checkpointed))
    assert got == model_map_with_state(inputs, 16, fn, timeout_batches=3)
    assert got[-1][1] == []  # everything timed out after the input ended


def test_state_api():
    state = State()
    state._bind("k", None, False)
    assert not state.exists() and state.getOption() is None
    with pytest.raises(KeyError):
        state.get()
    state.update(3)
    assert state.exists() and state.get() == 3
    state.remove()
    assert not state.exists()
    with pytest.raises(ValueError, match="removed"):
        state.update(4)
    with pytest.raises(ValueError, match="already been removed"):
        state.remove()

    state._bind("k", (5, 1000), True)
    assert state.isTimingOut() and state.get() == 5
    with pytest.raises(ValueError, match="timing out"):
        state.update(6)
    with pytest.raises(ValueError, match="timing out"):
        state.remove()


def test_state_spec_and_map_with_state_misuse(sc):
    with pytest.raises(TypeError):
        StateSpec.function(42)
    with pytest.raises(ValueError):
        StateSpec.function(running_total).timeout(0)
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    try:
        pairs = ssc.queueStream([[("a", 1)]])
        with pytest.raises(TypeError, match="StateSpec"):
            pairs.mapWithState(running_total)
        with pytest.raises(ValueError, match="only defined on the stream mapWithState returns"):
            pairs.stateSnapshots()
    finally:
        ssc.stop(stopSparkContext=False)


def test_a_failing_mapping_function_fails_its_batch_with_the_error(sc, checkpointed):
    def fn(key, value, state):
        if value == "boom":
            state.remove()
            state.update(1)  # update after remove: refused
        return value

    with pytest.raises(Exception, match="Cannot update the state after it has been removed"):
        run_batches(sc, [[("a", "boom")]], lambda s: s.mapWithState(StateSpec.function(fn)),
                    num_batches=1, configure=checkpointed)


# -- the checkpoint directory stays bounded ------------------------------------------------------

RESULTS: dict[str, dict[int, list]] = {}


class RecordInto:
    """foreachRDD target that pickles by reference (the metadata checkpoint holds it):
    each batch's sorted records go to ``RESULTS[name][batch ms]``."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, time, rdd):
        RESULTS.setdefault(self.name, {})[int(round(time.timestamp() * 1000))] = \
            sorted(rdd.collect())


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def ticks(time, rdd):
    """Each batch's data, made from its time: (second % 3, 1) and (second % 5, 10)."""
    second = int(round(time.timestamp()))
    return rdd.context.parallelize([(second % 3, 1), (second % 5, 10)], 2).union(rdd)


def model_counts(last_second: int) -> list:
    counts: dict = {}
    for second in range(1, last_second + 1):
        for key, value in ((second % 3, 1), (second % 5, 10)):
            counts[key] = counts.get(key, 0) + value
    return sorted(counts.items())


class Stepper:
    """Starts a context from ``getOrCreate`` on a shared manual clock; steps batches."""

    def __init__(self, ssc: StreamingContext, clock: ManualClock):
        self.ssc, self.clock = ssc, clock
        self.waiter = BatchWaiter()
        ssc.addStreamingListener(self.waiter)
        ssc.start()

    def step_to(self, second: int) -> None:
        self.clock.set_ms(second * 1000)
        assert self.waiter.wait_for(second * 1000, 60), f"batch {second}s did not complete"
        # Cleanup and the metadata checkpoint follow the completion event: let them finish.
        assert self.ssc._scheduler.wait_idle(30), "the batch's cleanup did not finish"


def test_checkpoint_directory_stays_bounded_over_many_batches_and_a_restart(sc, tmp_path):
    """updateStateByKey checkpointed every batch for 30 batches: at most the two newest
    state checkpoints (the newest metadata may be unreadable: the one before must still
    work) and ten metadata files. Restarted with getOrCreate, checkpoint data that the
    restored metadata does not name (left by a killed driver) is deleted, and the old
    application's state is deleted once superseded."""
    checkpoint, inbox = tmp_path / "checkpoint", tmp_path / "inbox"
    inbox.mkdir()
    name = f"bounded-{tmp_path.name}"
    clock = ManualClock(0)

    def setup():
        ssc = StreamingContext(sc, 1.0, clock=clock)
        ssc.checkpoint(str(checkpoint))
        counts = ssc.textFileStream(str(inbox)).map(lambda line: (line, 1)).transform(ticks) \
            .updateStateByKey(add_counts)
        counts.checkpoint(1)
        counts.foreachRDD(RecordInto(name))
        return ssc

    def state_dirs() -> set[Path]:
        return set(checkpoint.glob("*/rdd-*"))

    def app_dirs() -> set[Path]:
        return {p for p in checkpoint.iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name)}

    first = StreamingContext.getOrCreate(str(checkpoint), setup)
    assert first._recovered is None
    stepper = Stepper(first, clock)
    try:
        for second in range(1, 31):
            stepper.step_to(second)
            assert len(state_dirs()) <= 2, sorted(state_dirs())
            assert len(list(checkpoint.glob("checkpoint-*"))) <= metadata.KEEP_FILES
            newest = metadata.read_latest(checkpoint, None)
            named = {Path(p) for s in newest.graph.all_streams() for p in s._checkpoint_paths()}
            assert named == state_dirs(), "the newest metadata must name the state kept"
    finally:
        first.stop(stopSparkContext=False)
    assert RESULTS[name][30_000] == model_counts(30)
    assert len(app_dirs()) == 1
    old_app, old_state = next(iter(app_dirs())), state_dirs()

    # What a killed driver leaves: state written after its last metadata checkpoint, and
    # an earlier application's directory with nothing the metadata names.
    orphan = old_app / "rdd-99999"
    orphan.mkdir()
    (orphan / "part-00000").write_bytes(b"x")
    stray = checkpoint / ("0" * 32)
    (stray / "rdd-7").mkdir(parents=True)
    not_ours = checkpoint / "notes"
    not_ours.mkdir()

    again = StreamingContext.getOrCreate(str(checkpoint), setup)
    try:
        assert again._recovered is not None and again._recovered.time_ms == 30_000
        assert not orphan.exists() and not stray.exists()
        assert old_state <= state_dirs() and not_ours.exists()
        stepper = Stepper(again, clock)
        for second in range(31, 36):
            stepper.step_to(second)
            assert len(state_dirs()) <= 2, sorted(state_dirs())
        assert RESULTS[name][35_000] == model_counts(35)
        assert not old_state & state_dirs(), "the old application's state was not deleted"
        assert len(app_dirs()) <= 2
        assert len(list(checkpoint.glob("checkpoint-*"))) <= metadata.KEEP_FILES
    finally:
        again.stop(stopSparkContext=False)
        RESULTS.pop(name, None)
