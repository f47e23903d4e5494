"""PySpark's streaming semantics where sluicegate differed (issue 10), in-process:

* state streams need only ``sc.setCheckpointDir`` (as PySpark: no ``ssc.checkpoint``);
* ``StreamingContext.getOrCreate(path, setup)``: without a checkpoint, ``setup()``
  then ``ssc.checkpoint(path)``; with one, ``setup`` is not called, and the
  recovered context keeps the checkpointed context's clock;
* an exhausted ``queueStream`` gives one empty partition a batch, so ``count()``
  of it, or of a window of such batches, is 0 (checked against PySpark 4.3:
  ``count().pprint()`` prints 0 there, ``countByWindow(2, 1)`` prints nothing);
* queue streams report no ``streamIdToInputInfo`` entry (as Spark);
* code upgrades: the graph comparison (``state_skeleton``, ``upgrade_difference``),
  the clock a checkpoint carries, and an upgrade of a mapWithState stream.
"""
from __future__ import annotations

import os
import threading
from operator import add, sub
from pathlib import Path

import pytest
from sluicegate.driver import ManualClock, Receiver, StateSpec, StreamingContext
from sluicegate.driver.checkpoint import metadata
from streaming_harness import BatchWaiter, ManualBatches, batch_ms_of, run_batches


@pytest.fixture(autouse=True)
def shared_context(sc):
    """These tests use the suite's local[3] context; checkpoint dirs are theirs only."""
    before = sc.getCheckpointDir()
    yield
    sc._checkpoint_dir = before


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


# -- state with only the SparkContext's checkpoint directory ------------------------------------

BATCHES = [[("a", 1)], [("a", 1), ("b", 1)], [], [("b", 5)], [("a", 1)], [], []]


def running_counts(n: int) -> list[list]:
    totals: dict = {}
    out = []
    for batch in BATCHES[:n]:
        for key, value in batch:
            totals[key] = totals.get(key, 0) + value
        out.append(sorted(totals.items()))
    return out


def count_state(key, value, state):
    total = (state.get() if state.exists() else 0) + value
    state.update(total)
    return (key, total)


OPERATIONS = {
    "updateStateByKey": (lambda s: s.updateStateByKey(add_counts).checkpoint(1),
                         running_counts(7)),
    "mapWithState": (lambda s: s.mapWithState(StateSpec.function(count_state)).stateSnapshots(),
                     running_counts(7)),
    # a window of five slides: the incremental (inverse) path, whose result is state
    "countByWindow": (lambda s: s.countByWindow(5, 1),
                      [[1], [3], [3], [4], [5], [4], [2]]),
    "reduceByKeyAndWindow": (lambda s: s.reduceByKeyAndWindow(add, sub, 5, 1).checkpoint(1),
                             [[("a", 1)], [("a", 2), ("b", 1)], [("a", 2), ("b", 1)],
                              [("a", 2), ("b", 6)], [("a", 3), ("b", 6)], [("a", 2), ("b", 6)],
                              [("a", 1), ("b", 5)]]),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_state_streams_need_only_the_spark_context_checkpoint_dir(sc, tmp_path, name):
    """As PySpark: sc.setCheckpointDir() alone lets a state stream start; its state
    checkpoints go there, and no metadata checkpoint is written (ssc.checkpoint()
    was not called)."""
    op, expected = OPERATIONS[name]
    sc.setCheckpointDir(str(tmp_path / "sc-checkpoints"))
    got = run_batches(sc, BATCHES, op, sort=True)
    assert got == expected
    if name in ("updateStateByKey", "reduceByKeyAndWindow"):  # checkpointed every batch
        assert list((tmp_path / "sc-checkpoints").glob("*/rdd-*/part-00000"))
    assert not list(tmp_path.rglob("checkpoint-*"))


def test_no_checkpoint_directory_at_all_is_still_refused(sc):
    sc._checkpoint_dir = None
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    try:
        ssc.queueStream([[("a", 1)]]).updateStateByKey(add_counts).pprint()
        with pytest.raises(ValueError, match=r"checkpoint directory has not been set.*"
                                             r"SparkContext\.setCheckpointDir\(\)"):
            ssc.start()
    finally:
        ssc.stop(stopSparkContext=False)


# -- getOrCreate ------------------------------------------------------------------------------

RESULTS: dict[str, dict[int, list]] = {}


class RecordInto:
    """foreachRDD target that pickles (metadata checkpoints hold it)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, time, rdd):
        RESULTS.setdefault(self.name, {})[batch_ms_of(time)] = sorted(rdd.collect())


def drop_file(inbox: Path, name: str, text: str) -> None:
    hidden = inbox / f".{name}.tmp"
    hidden.write_text(text)
    os.rename(hidden, inbox / name)


class Stepper:
    def __init__(self, ssc: StreamingContext, clock: ManualClock):
        self.ssc, self.clock = ssc, clock
        self.waiter = BatchWaiter()
        ssc.addStreamingListener(self.waiter)
        ssc.start()

    def step_to(self, second: int) -> None:
        self.clock.set_ms(second * 1000)
        assert self.waiter.wait_for(second * 1000, 60), f"batch {second}s did not complete"
        assert self.ssc._scheduler.wait_idle(30)  # its cleanup and metadata checkpoint too


def test_get_or_create_checkpoints_to_the_path_and_recovers_without_setup(sc, tmp_path):
    """No checkpoint: setup() runs, and the context checkpoints to the path although
    setup never called ssc.checkpoint(). Checkpoint there: setup is not called again
    (its side effects do not run twice); the recovered context has the checkpointed
    graph, state and clock, and goes on."""
    checkpoint, inbox, marker = tmp_path / "checkpoint", tmp_path / "inbox", tmp_path / "output"
    inbox.mkdir()
    name = f"get-or-create-{tmp_path.name}"
    clock = ManualClock(0)
    calls: list[int] = []

    def setup():
        calls.append(1)
        marker.unlink(missing_ok=True)  # as PySpark's recoverable example removes its output
        ssc = StreamingContext(sc, 1.0, clock=clock)
        counts = ssc.textFileStream(str(inbox)).flatMap(str.split).map(lambda w: (w, 1)) \
            .updateStateByKey(add_counts)
        counts.checkpoint(1)
        counts.foreachRDD(RecordInto(name))
        return ssc

    try:
        first = StreamingContext.getOrCreate(str(checkpoint), setup)
        assert calls == [1] and first._recovered is None
        assert first._checkpoint_dir == str(checkpoint.absolute())
        marker.write_text("kept")
        stepper = Stepper(first, clock)
        stepper.step_to(1)
        drop_file(inbox, "a.txt", "x y x\n")
        for second in (2, 3):
            stepper.step_to(second)
        first.stop(stopSparkContext=False)
        assert RESULTS[name][3000] == [("x", 2), ("y", 1)]
        assert list(checkpoint.glob("checkpoint-*")), "no metadata checkpoint in the path"

        again = StreamingContext.getOrCreate(str(checkpoint), setup)
        assert calls == [1], "setup ran although a checkpoint exists"
        assert marker.read_text() == "kept"
        assert again._recovered is not None and again._recovered.time_ms == 3000
        assert again._clock is clock
        stepper = Stepper(again, clock)
        drop_file(inbox, "b.txt", "y z\n")
        for second in (4, 5, 6):
            stepper.step_to(second)
        assert RESULTS[name][6000] == [("x", 2), ("y", 2), ("z", 1)]
        again.stop(stopSparkContext=False)
    finally:
        active = StreamingContext.getActive()
        if active is not None:
            active.stop(stopSparkContext=False)
        RESULTS.pop(name, None)


def test_get_or_create_refuses_changed_code_and_names_the_upgrade(tmp_path):
    metadata.write(tmp_path, metadata.StreamingCheckpoint(
        metadata._version(), "an-older-fingerprint", "app", {}, 1000, 0, 1000, [], None))

    def setup():
        raise AssertionError("setup must not run")

    with pytest.raises(metadata.CheckpointError, match=r"different version of this application.*"
                                                       r"upgrade=True.*"
                                                       r"spark\.sluicegate\.streaming\.upgrade"):
        StreamingContext.getOrCreate(str(tmp_path), setup)


def test_clock_ref_resolves_to_the_same_clock_here_and_to_a_copy_elsewhere():
    clock = ManualClock(5)
    ref = metadata.ClockRef(clock)
    assert ref.resolve() is clock
    assert ref.payload is None  # a ManualClock holds a lock: it cannot travel
    picklable = PicklableClock("/some/file")
    copy_ref = metadata.ClockRef(picklable)
    metadata._CLOCKS.pop(copy_ref.token)  # as in another process
    copy = copy_ref.resolve()
    assert isinstance(copy, PicklableClock) and copy is not picklable and copy.path == "/some/file"
    gone = metadata.ClockRef(ManualClock(0))
    metadata._CLOCKS.pop(gone.token, None)  # (already gone: only a weak reference was kept)
    assert gone.resolve() is None  # the system clock, then


class PicklableClock:
    def __init__(self, path: str):
        self.path = path


# -- empty batches ------------------------------------------------------------------------------

def test_an_exhausted_queue_gives_one_empty_partition_and_counts_zero(sc, tmp_path):
    """PySpark 4.3, queueStream([[1, 2, 3]]): later batches have one empty partition;
    count().pprint() prints 3, 0, 0...; window(2, 1).count() prints 3, 3, 0...;
    countByWindow(2, 1) prints 3, 3, then nothing (a small window is reduced afresh)."""
    assert run_batches(sc, [[1, 2, 3]], lambda s: s.count(), num_batches=3) == [[3], [0], [0]]
    assert run_batches(sc, [[1, 2, 3]], lambda s: s.window(2, 1).count(), num_batches=4) == \
        [[3], [3], [0], [0]]
    assert run_batches(sc, [[1, 2, 3]], lambda s: s.glom(), num_batches=3) == \
        [[[1], [2], [3]], [[]], [[]]]  # local[3]: three slices, then one empty partition
    sc.setCheckpointDir(str(tmp_path))
    assert run_batches(sc, [[1, 2, 3]], lambda s: s.countByWindow(2, 1), num_batches=4) == \
        [[3], [3], [], []]


class StoreOnce(Receiver):
    """Stores one block of three records."""

    def __init__(self):
        super().__init__()
        self.stored = threading.Event()

    def onStart(self):
        threading.Thread(target=self._store, daemon=True).start()

    def _store(self):
        self.store(["r1", "r2", "r3"])
        self.stored.set()

    def onStop(self):
        pass


def test_queue_streams_report_no_input_info(sc):
    """As Spark: a queue stream's batches have no streamIdToInputInfo entry (a
    receiver's have theirs). numRecords() still counts the queued lists' records, so
    rates and the status pages show them (Spark shows 0)."""
    receiver = StoreOnce()
    with ManualBatches(sc, 1.0) as run:
        queue = run.ssc.queueStream([[1, 2], [3]])
        received = run.ssc.receiverStream(receiver)
        queue.map(str).union(received).foreachRDD(lambda rdd: rdd.count())
        run.start()
        assert receiver.stored.wait(30)
        run.step(2)
    first, second = run.waiter.infos[:2]
    receiver_id = 1  # the queue stream was defined first: id 0
    assert set(first.streamIdToInputInfo()) == {receiver_id}
    assert first.streamIdToInputInfo()[receiver_id].numRecords() == 3
    assert first.numRecords() == 2 + 3
    assert set(second.streamIdToInputInfo()) == {receiver_id}
    assert second.numRecords() == 1


# -- code upgrades: the graph comparison --------------------------------------------------------

def skeleton_of(sc, build) -> list[dict]:
    ssc = StreamingContext(sc, 1.0, clock=ManualClock(0))
    try:
        build(ssc)
        return [entry for _, entry in ssc._graph.state_skeleton()]
    finally:
        ssc.stop(stopSparkContext=False)


def v1_graph(ssc, directory="/nowhere"):
    counts = ssc.textFileStream(directory).flatMap(str.split).map(lambda w: (w, 1)) \
        .updateStateByKey(add_counts)
    counts.pprint()


def v2_graph(ssc):  # other stateless steps, another output, a stream only printed
    lines = ssc.textFileStream("/elsewhere")
    lines.pprint()
    counts = lines.map(str.lower).flatMap(str.split).filter(bool).map(lambda w: (w, 1)) \
        .updateStateByKey(add_counts)
    counts.map(str).saveAsTextFiles("/tmp/out")


def test_state_skeleton_keeps_inputs_and_stateful_streams_only(sc):
    old = skeleton_of(sc, v1_graph)
    assert [(e["op"], e["feeds"], e["index"]) for e in old] == \
        [("textFileStream", [], 0), ("updateStateByKey", [0], 3)]
    new = skeleton_of(sc, v2_graph)
    assert metadata.upgrade_difference(1000, old, 1000, new) is None
    assert metadata.upgrade_difference(1000, old, 2000, new) == \
        "the batch duration was 1s and is now 2s"


def test_upgrade_difference_names_the_first_stream_that_differs(sc):
    old = skeleton_of(sc, v1_graph)

    def more_partitions(ssc):
        ssc.textFileStream("/x").map(lambda w: (w, 1)).updateStateByKey(add_counts, 4).pprint()

    assert metadata.upgrade_difference(1000, old, 1000, skeleton_of(sc, more_partitions)) == (
        "stream #3 was updateStateByKey(numPartitions=default, initialRDD=False) sliding every "
        "1s fed by #0 textFileStream and is now #2 updateStateByKey(numPartitions=4, "
        "initialRDD=False) sliding every 1s fed by #0 textFileStream")

    def windowed_too(ssc):
        v1_graph(ssc)
        ssc._graph.inputs[0].window(3, 1).count().pprint()

    assert metadata.upgrade_difference(1000, old, 1000, skeleton_of(sc, windowed_too)) == (
        "the new graph adds stream #5 window(window_ms=3000, slide_ms=1000) sliding every 1s "
        "fed by #0 textFileStream, which has no state in the checkpoint")

    def stateless_only(ssc):
        ssc.textFileStream("/x").count().pprint()

    assert metadata.upgrade_difference(1000, old, 1000, skeleton_of(sc, stateless_only)) == (
        "the new graph has nothing in place of the checkpoint's stream #3 "
        "updateStateByKey(numPartitions=default, initialRDD=False) sliding every 1s fed by "
        "#0 textFileStream, whose state would be lost")


# -- code upgrades: mapWithState, in-process ----------------------------------------------------

def first_version(key, value, state):
    total = (state.get() if state.exists() else 0) + value
    state.update(total)
    return f"v1 {key}={total}"


def second_version(key, value, state):  # same state, new output, keys lower-cased upstream
    total = (state.get() if state.exists() else 0) + value
    state.update(total)
    return f"v2 {key}={total}"


def test_an_upgrade_carries_map_with_state_over(sc, tmp_path):
    checkpoint, inbox = tmp_path / "checkpoint", tmp_path / "inbox"
    inbox.mkdir()
    name = f"upgrade-mws-{tmp_path.name}"
    clock = ManualClock(0)

    def setup(version):
        def build():
            ssc = StreamingContext(sc, 1.0, clock=clock)
            words = ssc.textFileStream(str(inbox)).flatMap(str.split)
            if version == 2:
                words = words.map(str.lower)
            fn = first_version if version == 1 else second_version
            mapped = words.map(lambda w: (w, 1)).mapWithState(StateSpec.function(fn))
            mapped.foreachRDD(RecordInto(f"{name}-{version}"))
            mapped.stateSnapshots().foreachRDD(RecordInto(f"{name}-{version}-state"))
            return ssc
        return build

    try:
        first = StreamingContext.getOrCreate(str(checkpoint), setup(1))
        stepper = Stepper(first, clock)
        stepper.step_to(1)
        drop_file(inbox, "a.txt", "A a\n")
        for second in (2, 3):
            stepper.step_to(second)
        # A graceful stop checkpoints the newest state (default interval: 10 s, not reached
        # yet), so the upgrade starts from it rather than computing batches 1-3 again with
        # the new code.
        first.stop(stopSparkContext=False, stopGraceFully=True)
        assert RESULTS[f"{name}-1"][3000] == ["v1 A=1", "v1 a=1"]

        drop_file(inbox, "b.txt", "A b\n")
        upgraded = StreamingContext.getOrCreate(str(checkpoint), setup(2), upgrade=True)
        assert upgraded._recovered is not None
        stepper = Stepper(upgraded, clock)
        for second in (4, 5, 6):
            stepper.step_to(second)
        outputs = RESULTS[f"{name}-2"]
        assert [r for t in sorted(outputs) for r in outputs[t]] == ["v2 a=2", "v2 b=1"]
        assert RESULTS[f"{name}-2-state"][6000] == [("A", 1), ("a", 2), ("b", 1)]
        upgraded.stop(stopSparkContext=False)
    finally:
        active = StreamingContext.getActive()
        if active is not None:
            active.stop(stopSparkContext=False)
        for key in [k for k in RESULTS if k.startswith(name)]:
            RESULTS.pop(key)


def test_an_upgrade_reads_a_checkpoint_that_names_code_now_gone(tmp_path, monkeypatch):
    """The old application's module-level functions and classes are pickled by name; an
    upgrade never calls them, so one the new code removed loads as a stand-in (a plain
    recovery, which would run it, still refuses)."""
    (tmp_path / "old_app_module.py").write_text(
        "def tokenize(line):\n    return line.split()\n\n"
        "class Sink:\n    def __init__(self):\n        self.path = '/out'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import old_app_module

    graph = {"tokenize": old_app_module.tokenize, "sink": old_app_module.Sink()}
    metadata.write(tmp_path / "ckpt", metadata.StreamingCheckpoint(
        metadata._version(), "", "app", {}, 1000, 0, 1000, [], graph))
    monkeypatch.delattr(old_app_module, "tokenize")
    monkeypatch.delattr(old_app_module, "Sink")
    with pytest.raises(metadata.CheckpointError, match="cannot be restored"):
        metadata.read_latest(tmp_path / "ckpt", None)
    restored = metadata.read_latest(tmp_path / "ckpt", None, lenient=True)
    assert restored.time_ms == 1000
    assert restored.graph["sink"].path == "/out"  # its state, on a stand-in
    with pytest.raises(metadata.CheckpointError, match="no longer part of the application"):
        restored.graph["sink"]()


def test_an_input_that_does_not_name_its_position_cannot_be_upgraded():
    from sluicegate.driver.dstream.inputs import FileInput, InputOp

    class Unnamed(InputOp):
        pass

    with pytest.raises(ValueError, match="Unnamed does not say what its input position is"):
        Unnamed(1000, 0).take_position(Unnamed(1000, 0))
    old, new = FileInput(1000, 0, "/a", None), FileInput(1000, 0, "/b", None)
    old.seen, old.files_by_batch = {"/a/f1"}, {2000: ["/a/f1"]}
    new.take_position(old)
    assert (new.seen, new.files_by_batch, new.directory) == ({"/a/f1"}, {2000: ["/a/f1"]},
                                                             Path("/b"))
    with pytest.raises(ValueError, match="must be defined in the same order"):
        FileInput(1000, 1, "/b", None).take_position(old)
