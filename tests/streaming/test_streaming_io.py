"""Streaming against the real world: sockets, files, receiver threads, output
operations, and errors in user code. The streaming context's lifecycle (start,
stop, graceful stops, listeners) is in ``test_streaming_lifecycle.py``.

Where the data source is a file or a queue, batches are stepped with a manual
clock (deterministic). Sockets and receivers deliver on their own threads, so
those tests run on the system clock and wait for a condition (with generous
timeouts), never for a fixed time -- except the rate-limit test, whose
subject is time.
"""
from __future__ import annotations

import datetime
import os
import threading
import time
from collections import Counter
from operator import add

import pytest
from waiting import wait_until

from sluicegate.driver import JobFailedError, Receiver, StreamingContext
from streaming_harness import BatchWaiter, Collector, ManualBatches, batch_ms_of
from streaming_sources import EndlessReceiver, Events, NumberReceiver, TextServer

pytestmark = pytest.mark.usefixtures("no_streaming_leftovers")

DASHES = "-------------------------------------------"


def word_counts(stream):
    return stream.flatMap(lambda line: line.split(" ")).map(lambda w: (w, 1)).reduceByKey(add)


def summed(collector: Collector) -> Counter:
    total: Counter = Counter()
    for word, count in collector.all_records():
        total[word] += count
    return total


# -- socketTextStream -------------------------------------------------------------------------

def test_socket_text_stream_word_count(sc):
    payload = b"to be or not to be\n" * 100 + b"hello world\n" * 50
    expected = Counter({"to": 200, "be": 200, "or": 100, "not": 100, "hello": 50, "world": 50})
    with TextServer([(payload, False)]) as server:
        ssc = StreamingContext(sc, 0.5)
        collector = Collector(word_counts(ssc.socketTextStream("127.0.0.1", server.port)))
        waiter = BatchWaiter()
        ssc.addStreamingListener(waiter)
        ssc.start()
        try:
            assert collector.wait_for(
                lambda records: sum(c for _, c in records) >= sum(expected.values()), 60)
            # two more batches: nothing is counted twice
            seen = len(waiter.completed)
            assert wait_until(lambda: len(waiter.completed) >= seen + 2, 30)
        finally:
            ssc.stop(stopSparkContext=False)
        assert summed(collector) == expected
        assert server.accepted == 1
        # every batch is one reduceByKey result: a word at most once per batch
        for batch in collector.in_order():
            assert len(batch) == len({w for w, _ in batch})


def test_socket_text_stream_partial_last_line_and_utf8(sc):
    payload = "héllo wörld\nnaïve café\nunterminated".encode("utf-8")
    with TextServer([(payload, False)]) as server:
        ssc = StreamingContext(sc, 0.5)
        collector = Collector(ssc.socketTextStream("127.0.0.1", server.port))
        ssc.start()
        try:
            assert collector.wait_for(lambda records: len(records) >= 2, 60)
        finally:
            ssc.stop(stopSparkContext=False)
        # the unterminated line is held back while the connection is open
        assert collector.all_records() == ["héllo wörld", "naïve café"]


# -- textFileStream / binaryRecordsStream -----------------------------------------------------------

def test_text_file_stream_picks_up_new_files_once(sc, tmp_path):
    watched = tmp_path / "in"
    watched.mkdir()
    (watched / "old.txt").write_text("old line\n")
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.textFileStream(str(watched)))
        run.start()
        (watched / "a.txt").write_text("a1\na2\n")
        (watched / ".b.txt.tmp").write_text("b1\nb2\nb3\n")  # hidden while being written
        (watched / "_c.txt").write_text("underscore\n")
        run.step(2)  # a.txt: seen by one scan, unchanged at the next -> read
        os.rename(watched / ".b.txt.tmp", watched / "b.txt")
        run.step(2)
        with open(watched / "old.txt", "a") as f:  # files present at start stay ignored
            f.write("more old\n")
        run.step(3)
    out = collector.in_order(sort=True)
    assert out == [[], ["a1", "a2"], [], ["b1", "b2", "b3"], [], [], []]


def test_text_file_stream_never_reads_a_file_half_written(sc, tmp_path):
    watched = tmp_path / "in"
    watched.mkdir()
    parts = [[f"part{p}-line{i}" for i in range(20)] for p in range(4)]
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.textFileStream(str(watched)))
        run.start()
        for part in parts:  # one append per batch: the file grows across batch boundaries
            with open(watched / "slow.txt", "a") as f:
                f.write("\n".join(part) + "\n")
            run.step()
        run.step(3)
    batches = collector.in_order()
    assert len(batches) == 7
    holding = [i for i, batch in enumerate(batches) if batch]
    assert len(holding) == 1, f"the file's lines were split over batches {holding}"
    assert sorted(batches[holding[0]]) == sorted(line for part in parts for line in part)


def test_binary_records_stream(sc, tmp_path):
    watched = tmp_path / "bin"
    watched.mkdir()
    records = [bytes([i]) * 3 + b"\x00" for i in range(6)]
    with ManualBatches(sc, 1.0) as run:
        collector = Collector(run.ssc.binaryRecordsStream(str(watched), 4))
        run.start()
        hidden = watched / ".records.tmp"
        hidden.write_bytes(b"".join(records))
        os.rename(hidden, watched / "records.bin")
        run.step(3)
    assert collector.in_order() == [[], records, []]


def test_binary_records_stream_rejects_bad_length(sc, tmp_path):
    ssc = StreamingContext(sc, 1.0)
    with pytest.raises(ValueError):
        ssc.binaryRecordsStream(str(tmp_path), 0)


# -- custom receivers -----------------------------------------------------------------------------------

def test_custom_receiver_single_records_and_lists(sc):
    receiver = NumberReceiver(1000, singles=400, chunk=50)
    ssc = StreamingContext(sc, 0.5)
    events = Events()
    ssc.addStreamingListener(events)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert collector.wait_for(lambda records: len(records) >= 1000, 60)
        assert receiver.done.is_set()
        seen = len(events.of("completed"))
        assert wait_until(lambda: len(events.of("completed")) >= seen + 1, 30)
    finally:
        ssc.stop(stopSparkContext=False)
    assert sorted(collector.all_records()) == list(range(1000))
    # the listener's numRecords agrees with what the batches held
    per_batch = {t: len(records) for t, records in collector.batches.items()}
    for completed in events.of("completed"):
        assert completed["records"] == per_batch.get(completed["time"], 0)
        assert set(completed["inputs"]) == {0}
    assert sum(c["records"] for c in events.of("completed")) == 1000


def test_receiver_stream_needs_a_receiver(sc):
    ssc = StreamingContext(sc, 1.0)
    with pytest.raises(TypeError):
        ssc.receiverStream(object())


def test_store_after_stop_is_refused(sc):
    """Like Spark's block generator, a stopped receiver cannot store: data handed over
    after the stop would never reach a batch, so store() must not pretend it did."""
    receiver = NumberReceiver(10, singles=10)
    ssc = StreamingContext(sc, 0.5)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert collector.wait_for(lambda records: len(records) >= 10, 60)
    finally:
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    assert receiver.isStopped()
    with pytest.raises(Exception, match="stopped"):
        receiver.store(99)
    with pytest.raises(Exception, match="stopped"):
        receiver.store([99, 100])
    assert sorted(collector.all_records()) == list(range(10))


# -- output operations ------------------------------------------------------------------------------------------

def pprint_block(time_s: float, records: list, num: int) -> str:
    lines = [DASHES, f"Time: {datetime.datetime.fromtimestamp(time_s)}", DASHES]
    lines += [str(r) for r in records[:num]]
    if len(records) > num:
        lines.append("...")
    lines.append("")
    return "\n".join(lines) + "\n"


def test_pprint_format(sc, capsys):
    batches = [list(range(12)), [], [("a", 1), "b"], list(range(11))]
    with ManualBatches(sc, 0.5) as run:
        stream = run.ssc.queueStream(batches)
        stream.pprint()
        stream.pprint(2)
        run.start()
        capsys.readouterr()
        run.step(4)
    printed = capsys.readouterr().out
    expected = ""
    for i, records in enumerate(batches):
        expected += pprint_block(0.5 * (i + 1), records, 10) + pprint_block(0.5 * (i + 1), records, 2)
    assert printed == expected
    # spot-check the literal format
    assert printed.startswith(f"{DASHES}\nTime: {datetime.datetime.fromtimestamp(0.5)}\n{DASHES}\n0\n")
    assert "9\n...\n\n" in printed


def test_save_as_text_files(sc, tmp_path):
    out = tmp_path / "out"
    with ManualBatches(sc, 1.0) as run:
        stream = run.ssc.queueStream([["a", "b", "c", "d"], [], ["x"]])
        stream.saveAsTextFiles(str(out / "words"), "txt")
        stream.map(lambda s: s.upper()).saveAsTextFiles(str(out / "plain"))
        run.start()
        run.step(4)
    names = sorted(os.listdir(out))
    assert names == sorted([f"words-{t}.txt" for t in (1000, 2000, 3000, 4000)]
                           + [f"plain-{t}" for t in (1000, 2000, 3000, 4000)])
    # no staging directory or temporary file anywhere
    for root, dirs, files in os.walk(out):
        assert not [n for n in dirs + files if n.startswith(".")], (root, dirs, files)

    def read(directory) -> tuple[list[str], str]:
        parts = sorted(n for n in os.listdir(directory) if n.startswith("part-"))
        assert (directory / "_SUCCESS").exists()
        return parts, "".join((directory / p).read_text() for p in parts)

    assert read(out / "words-1000.txt") == (["part-00000", "part-00001", "part-00002"],
                                            "a\nb\nc\nd\n")
    assert read(out / "plain-1000") == (["part-00000", "part-00001", "part-00002"], "A\nB\nC\nD\n")
    assert read(out / "words-2000.txt")[1] == ""
    assert read(out / "words-3000.txt")[1] == "x\n"
    assert read(out / "plain-3000")[1] == "X\n"
    # an exhausted queue's batch: one empty partition (as PySpark's), so one empty part file
    assert read(out / "words-4000.txt") == (["part-00000"], "")


# -- errors in user code -------------------------------------------------------------------------------------------

def refuse_three(x):
    if x == 3:
        raise KeyError("three is not allowed here")
    return x * 10


def test_failing_user_function_fails_only_its_batch(sc):
    with ManualBatches(sc, 1.0) as run:
        stream = run.ssc.queueStream([[1, 2], [3], [4], [3, 5], [6]])
        collector = Collector(stream.map(refuse_three))
        run.start()
        run.step(2)
        with pytest.raises(Exception) as first:
            run.ssc.awaitTermination()
        run.step(2)
        with pytest.raises(Exception) as second:
            run.ssc.awaitTerminationOrTimeout(10)
        run.step(1)
    for error in (first.value, second.value):
        text = str(error)
        assert "KeyError" in text
        assert "three is not allowed here" in text
        assert "Traceback" in text and "refuse_three" in text  # the worker's traceback
        assert isinstance(error, JobFailedError)
    # the failed batches produced nothing; the others ran normally
    assert sorted(collector.batches) == [1000, 3000, 5000]
    assert collector.in_order() == [[10, 20], [40], [60]]


def test_error_in_driver_side_transform_is_reported(sc):
    def bad_transform(rdd):
        raise RuntimeError("cannot build this batch")

    with ManualBatches(sc, 1.0) as run:
        stream = run.ssc.queueStream([[1], [2]])
        collector = Collector(stream.transform(lambda t, rdd: bad_transform(rdd)
                                               if batch_ms_of(t) == 1000 else rdd))
        run.start()
        run.step(2)
        with pytest.raises(RuntimeError, match="cannot build this batch"):
            run.ssc.awaitTerminationOrTimeout(5)
    assert collector.in_order() == [[2]]


# -- tests with their own SparkContext (last: each replaces the shared one) ---------------------

def test_socket_reconnects_after_the_server_closes(own_context):
    sc = own_context("local[2]", spark__streaming__receiverRestartDelay="200ms")
    events = Events()
    connections = [(b"a b\n" * 30, True), (b"c d a\n" * 20, False)]
    with TextServer(connections) as server:
        ssc = StreamingContext(sc, 0.5)
        ssc.addStreamingListener(events)
        collector = Collector(word_counts(ssc.socketTextStream("127.0.0.1", server.port)))
        ssc.start()
        try:
            assert collector.wait_for(lambda records: sum(c for _, c in records) >= 120, 60), \
                summed(collector)
            assert server.accepted == 2
        finally:
            ssc.stop(stopSparkContext=False)
    assert summed(collector) == Counter({"a": 50, "b": 30, "c": 20, "d": 20})
    assert any("no more data" in message for _, message, _ in events.receiver_errors), \
        events.receiver_errors


class FlakyReceiver(Receiver):
    """Its first onStart raises; later ones deliver ``0 .. 49``."""

    def __init__(self):
        super().__init__()
        self.starts = 0
        self.stops = 0

    def onStart(self):
        self.starts += 1
        if self.starts == 1:
            raise ConnectionError("source not ready yet")
        threading.Thread(target=lambda: self.store(list(range(50))), daemon=True).start()

    def onStop(self):
        self.stops += 1


def test_receiver_failing_to_start_is_restarted(own_context):
    sc = own_context("local[2]", spark__streaming__receiverRestartDelay="200ms")
    receiver = FlakyReceiver()
    events = Events()
    ssc = StreamingContext(sc, 0.5)
    ssc.addStreamingListener(events)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        assert collector.wait_for(lambda records: len(records) >= 50, 60)
        seen = len(events.of("completed"))
        assert wait_until(lambda: len(events.of("completed")) >= seen + 2, 30)
        assert receiver.starts == 2  # restarted once, then left alone
    finally:
        ssc.stop(stopSparkContext=False)
    assert sorted(collector.all_records()) == list(range(50))
    assert receiver.stops == 2  # after the failed start, and at the end
    assert any("source not ready yet" in error and "ConnectionError" in error
               for _, _, error in events.receiver_errors), events.receiver_errors


def test_receiver_max_rate(own_context):
    rate = 200
    sc = own_context("local[2]", spark__streaming__receiver__maxRate=str(rate))
    receiver = EndlessReceiver(pause_every=0)
    ssc = StreamingContext(sc, 0.5)
    collector = Collector(ssc.receiverStream(receiver))
    ssc.start()
    try:
        time.sleep(2.0)  # the subject of this test is a rate over time
    finally:
        ssc.stop(stopSparkContext=False)
    assert receiver.finished.wait(10)
    elapsed = receiver.last_store - receiver.first_store
    assert 0 < receiver.stored < 10_000
    # a burst of one second's allowance, then at most `rate` a second (loosely)
    assert receiver.stored <= rate * (elapsed + 1) * 1.5, (receiver.stored, elapsed)
    assert len(collector.all_records()) <= receiver.stored
