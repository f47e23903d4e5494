"""A StopIteration raised by user code fails the task, wherever the code runs.

Python iterators end at the first StopIteration, so one raised inside a
function given to ``map`` used to end the partition: the job "succeeded"
with records missing. PySpark fails the task instead
(``[STOP_ITERATION_OCCURRED] Caught StopIteration thrown from user's code;
failing the task``). These tests cover every kind of place user code runs on
the executors -- narrow operators, combiners and aggregators, sort keys,
partition functions, sinks, caching, streaming state functions, and the
functions the driver calls per batch -- and check that the job fails with
PySpark's message and names the user's code. A SparkContext created inside
a task fails as PySpark's does (CONTEXT_ONLY_VALID_ON_DRIVER).
"""
from __future__ import annotations

import itertools
import threading
from operator import add

import pytest

from sluicegate.driver import JobFailedError, SparkConf, SparkContext, StateSpec
from streaming_harness import run_batches

THIS_FILE = "test_user_stopiteration.py"


def exhausted():
    """The usual mistake: ``next()`` on an iterator that has run out."""
    return next(iter([]))


def stops_at(bad):
    """``x -> x``, raising StopIteration at ``bad``."""
    def stop_at_record(x):
        return exhausted() if x == bad else x
    return stop_at_record


def fails_with_user_stop(call) -> JobFailedError:
    with pytest.raises(JobFailedError) as info:
        call()
    error = info.value
    text = str(error)
    assert "[STOP_ITERATION_OCCURRED] Caught StopIteration thrown from user's code" in text, text
    assert error.error_type == "UserCodeStopIteration", text
    assert THIS_FILE in text, text  # the user's code is named (file, function, line)
    return error


# -- narrow operators (fused into one C-level loop) --------------------------------------------

def test_map_raising_stopiteration_fails_instead_of_dropping_records(sc):
    # The program: it used to return [0, 1, 2, 5, 6, 7, 8, 9].
    error = fails_with_user_stop(
        lambda: sc.parallelize(range(10), 2).map(lambda x: next(iter([])) if x == 3 else x).collect())
    assert "the function given to map" in str(error) and "on the record 3" in str(error)


def test_stopiteration_on_the_last_record_of_a_partition_is_caught(sc):
    # Nothing is left to drop here, but the partition still did not end by itself.
    fails_with_user_stop(lambda: sc.parallelize(range(10), 2).map(stops_at(9)).collect())
    fails_with_user_stop(lambda: sc.parallelize(list("abcdef"), 2).map(stops_at("f")).collect())


def test_filter_and_flatmap_raising_stopiteration_fail(sc):
    error = fails_with_user_stop(
        lambda: sc.parallelize(range(10), 2).filter(lambda x: stops_at(4)(x) > 1).collect())
    assert "the function given to filter" in str(error) and "stop_at_record" in str(error)
    error = fails_with_user_stop(
        lambda: sc.parallelize(range(10), 2).flatMap(lambda x: [stops_at(7)(x)] * 2).collect())
    assert "the function given to flatMap" in str(error)


def test_the_function_that_raised_is_named_in_a_longer_pipeline(sc):
    rdd = (sc.parallelize(range(20), 2).map(lambda x: x * 2).flatMap(lambda x: [x, x + 1])
           .filter(stops_at(13)).map(lambda x: x - 1))
    error = fails_with_user_stop(rdd.collect)
    assert "the function given to filter" in str(error) and "on the record 13" in str(error)
    assert "stop_at_record" in error.worker_traceback  # the user's frame, as PySpark shows it


def test_keyby_groupby_and_sortby_functions_raising_stopiteration_fail(sc):
    rdd = sc.parallelize(range(12), 3)
    fails_with_user_stop(lambda: rdd.keyBy(stops_at(5)).collect())
    fails_with_user_stop(lambda: rdd.groupBy(lambda x: stops_at(5)(x) % 2).collect())
    fails_with_user_stop(lambda: rdd.sortBy(stops_at(5)).collect())


def test_mapvalues_and_flatmapvalues_raising_stopiteration_fail(sc):
    pairs = sc.parallelize([(i % 3, i) for i in range(12)], 2)
    fails_with_user_stop(lambda: pairs.mapValues(stops_at(4)).collect())
    fails_with_user_stop(lambda: pairs.flatMapValues(lambda v: [stops_at(4)(v)]).collect())


def test_a_pipeline_after_a_shuffle_is_checked_too(sc):
    # Its input (a merged shuffle partition) cannot be replayed: the error
    # names the pipeline's function instead.
    counts = sc.parallelize(range(30), 3).map(lambda x: (x % 5, 1)).reduceByKey(add)
    error = fails_with_user_stop(lambda: counts.map(lambda kv: stops_at(2)(kv[0])).collect())
    assert "the function given to map" in str(error)


def test_mappartitions_functions(sc):
    rdd = sc.parallelize(range(10), 2)
    # Raising directly.
    fails_with_user_stop(lambda: rdd.mapPartitions(lambda it: [exhausted()]).collect())
    # A user's function reading an input that a map upstream cut short.
    fails_with_user_stop(
        lambda: rdd.map(stops_at(3)).mapPartitionsWithIndex(lambda i, it: [(i, sum(it))]).collect())
    fails_with_user_stop(lambda: rdd.map(stops_at(3)).glom().collect())


def test_unions_cartesians_and_joins_over_a_failing_map(sc):
    good = sc.parallelize(range(6), 2)
    bad = sc.parallelize(range(6), 2).map(stops_at(2))
    fails_with_user_stop(lambda: good.union(bad).collect())
    fails_with_user_stop(lambda: good.cartesian(bad).count())
    fails_with_user_stop(lambda: good.cartesian(good.map(stops_at(2))).collect())
    pairs = good.map(lambda x: (x, x))
    fails_with_user_stop(lambda: pairs.join(bad.map(lambda x: (x, -x))).collect())
    # Co-partitioned inputs: the cogroup reads the failing map in the same task.
    left = pairs.partitionBy(2)
    right = left.map(lambda kv: (kv[0], stops_at(4)(kv[1])), preservesPartitioning=True)
    fails_with_user_stop(lambda: left.join(right).collect())


# -- combiners and aggregators --------------------------------------------------------------------

def test_combiner_and_aggregator_functions_raising_stopiteration_fail(sc):
    pairs = sc.parallelize([(i % 3, i) for i in range(30)], 3)
    fails_with_user_stop(lambda: pairs.reduceByKey(lambda a, b: exhausted() if a + b > 20 else a + b)
                         .collect())
    fails_with_user_stop(
        lambda: pairs.combineByKey(lambda v: exhausted() if v >= 20 else v, lambda c, v: c + v,
                                   lambda a, b: a + b).collect())
    fails_with_user_stop(
        lambda: pairs.combineByKey(lambda v: v, lambda c, v: c + v,
                                   lambda a, b: exhausted()).collect())
    fails_with_user_stop(
        lambda: pairs.aggregateByKey(0, lambda acc, v: stops_at(9)(v) + acc, add).collect())
    fails_with_user_stop(lambda: pairs.foldByKey(0, lambda a, b: stops_at(11)(b) + a).collect())
    fails_with_user_stop(lambda: pairs.groupByKey().mapValues(lambda vs: exhausted()).collect())
    # Already partitioned: the combine runs in the same task as the failing map.
    partitioned = pairs.partitionBy(3)
    fails_with_user_stop(lambda: partitioned.map(lambda kv: (kv[0], stops_at(7)(kv[1])),
                                                 preservesPartitioning=True)
                         .reduceByKey(add, 3).collect())


def test_fold_aggregate_reduce_and_counting_actions(sc):
    rdd = sc.parallelize(range(10), 2)
    fails_with_user_stop(lambda: rdd.reduce(lambda a, b: stops_at(6)(b) + a))
    fails_with_user_stop(lambda: rdd.fold(0, lambda a, b: stops_at(6)(b) + a))
    fails_with_user_stop(lambda: rdd.aggregate(0, lambda a, b: stops_at(6)(b) + a, add))
    # Actions that read a map's whole output: the program with count/sum/take.
    fails_with_user_stop(lambda: rdd.map(stops_at(3)).count())
    fails_with_user_stop(lambda: rdd.map(stops_at(3)).sum())
    fails_with_user_stop(lambda: rdd.map(stops_at(3)).take(100))
    fails_with_user_stop(lambda: rdd.map(stops_at(3)).countByValue())


def test_the_driver_side_merge_of_reduce_fold_and_aggregate_is_checked(sc):
    from sluicegate.common.stopiteration import UserCodeStopIteration
    from sluicegate.driver import TaskContext
    rdd = sc.parallelize(range(10), 2)

    def stops_on_merging_partials(a, b):
        if TaskContext.get() is None:  # on the driver, merging the partitions' results
            raise StopIteration
        return a + b
    for action in (lambda: rdd.reduce(stops_on_merging_partials),
                   lambda: rdd.fold(0, stops_on_merging_partials),
                   lambda: rdd.aggregate(0, add, stops_on_merging_partials)):
        with pytest.raises(UserCodeStopIteration, match="STOP_ITERATION_OCCURRED"):
            action()


# -- sort keys and partition functions ----------------------------------------------------------

def test_sort_keys_and_partition_functions_raising_stopiteration_fail(sc):
    pairs = sc.parallelize([(i, str(i)) for i in range(10)], 2)
    fails_with_user_stop(lambda: pairs.sortByKey(numPartitions=1, keyfunc=stops_at(4)).collect())
    fails_with_user_stop(
        lambda: pairs.repartitionAndSortWithinPartitions(2, keyfunc=stops_at(4)).collect())
    fails_with_user_stop(lambda: pairs.partitionBy(2, stops_at(4)).collect())
    fails_with_user_stop(lambda: pairs.map(lambda kv: (stops_at(4)(kv[0]), kv[1]))
                         .sortByKey(numPartitions=1).collect())
    fails_with_user_stop(lambda: pairs.reduceByKey(add, 2, partitionFunc=stops_at(4)).collect())


# -- sinks and caching --------------------------------------------------------------------------

def test_foreach_and_foreachpartition(sc):
    rdd = sc.parallelize(range(10), 2)
    fails_with_user_stop(lambda: rdd.foreach(stops_at(3)))
    fails_with_user_stop(lambda: rdd.foreachPartition(lambda it: exhausted()))
    total = sc.accumulator(0)

    def add_all(it):
        for x in it:
            total.add(x)

    # A partition function reading a map cut short used to see a short partition and succeed.
    fails_with_user_stop(lambda: rdd.map(stops_at(3)).foreachPartition(add_all))
    # The failed task's 0 + 1 + 2 never count; the other partition's 5..9 do if
    # its task finished before the job was aborted.
    assert total.value in (0, sum(range(5, 10)))


def test_save_as_text_file_writes_nothing_when_user_code_raises_stopiteration(sc, tmp_path):
    out = tmp_path / "out"
    fails_with_user_stop(lambda: sc.parallelize(range(10), 2).map(stops_at(3))
                         .saveAsTextFile(str(out)))
    assert not (out / "_SUCCESS").exists()


def test_a_short_partition_is_never_cached(sc):
    rdd = sc.parallelize(range(10), 2).map(stops_at(3)).cache()
    fails_with_user_stop(rdd.count)
    # Had the short partition been cached, this would now "succeed" with 8 records.
    fails_with_user_stop(rdd.collect)
    rdd.unpersist()


def test_consumers_that_stop_reading_early_are_not_mistaken_for_user_errors(sc):
    rdd = sc.parallelize(range(100), 4).map(lambda x: x * 2).filter(lambda x: x % 3)
    assert rdd.take(3) == [2, 4, 8]
    assert rdd.first() == 2 and not rdd.isEmpty()
    kept = [[x * 2 for x in range(i, i + 25) if x * 2 % 3] for i in range(0, 100, 25)]
    assert rdd.mapPartitions(lambda it: itertools.islice(it, 2)).collect() == \
        [x for part in kept for x in part[:2]]
    assert rdd.map(lambda x: x).top(2) == [196, 194]
    assert sc.parallelize([], 2).map(stops_at(3)).collect() == []


# -- streaming ----------------------------------------------------------------------------------

BATCHES = [[("a", 1), ("b", 2)], [("a", 3), ("c", 4)], [("b", 5)]]


def test_dstream_operators_raising_stopiteration_fail_the_batch(sc):
    with pytest.raises(JobFailedError, match="STOP_ITERATION_OCCURRED"):
        run_batches(sc, BATCHES, lambda s: s.map(lambda kv: stops_at(3)(kv[1])), num_batches=3)
    with pytest.raises(JobFailedError, match="STOP_ITERATION_OCCURRED"):
        run_batches(sc, BATCHES, lambda s: s.transform(lambda rdd: rdd.filter(
            lambda kv: stops_at(4)(kv[1]))), num_batches=3)
    with pytest.raises(JobFailedError, match="STOP_ITERATION_OCCURRED"):
        run_batches(sc, [[("a", 1), ("a", 2)]], lambda s: s.reduceByKey(lambda a, b: exhausted()),
                    num_batches=1)


def test_window_filter_functions_raising_stopiteration_fail_the_batch(sc, tmp_path):
    with pytest.raises(JobFailedError, match="STOP_ITERATION_OCCURRED"):
        run_batches(sc, BATCHES * 3, lambda s: s.reduceByKeyAndWindow(
            add, lambda a, b: a - b, 5, 1, filterFunc=lambda kv: stops_at(("a", 4))(kv)),
            num_batches=9, configure=lambda ssc: ssc.checkpoint(str(tmp_path / "cp")))


def test_state_functions_raising_stopiteration_fail_the_batch(sc, tmp_path):
    def update(values, last):
        total = sum(values) + (last or 0)
        return exhausted() if total == 4 else total

    with pytest.raises(JobFailedError) as info:
        run_batches(sc, BATCHES, lambda s: s.updateStateByKey(update), num_batches=3,
                    configure=lambda ssc: ssc.checkpoint(str(tmp_path / "cp1")))
    assert "STOP_ITERATION_OCCURRED" in str(info.value) and THIS_FILE in str(info.value)
    # The new values come from a map that a StopIteration cut short.
    with pytest.raises(JobFailedError, match="STOP_ITERATION_OCCURRED"):
        run_batches(sc, BATCHES, lambda s: s.map(lambda kv: (kv[0], stops_at(3)(kv[1])))
                    .updateStateByKey(lambda vs, last: sum(vs) + (last or 0)), num_batches=3,
                    configure=lambda ssc: ssc.checkpoint(str(tmp_path / "cp3")))

    def mapping(key, value, state):
        if value == 4:
            exhausted()
        state.update(value)
        return key, value

    with pytest.raises(JobFailedError) as info:
        run_batches(sc, BATCHES, lambda s: s.mapWithState(StateSpec.function(mapping)),
                    num_batches=3, configure=lambda ssc: ssc.checkpoint(str(tmp_path / "cp2")))
    assert "STOP_ITERATION_OCCURRED" in str(info.value) and THIS_FILE in str(info.value)


def test_foreachrdd_running_a_failing_action_fails_the_batch(sc):
    seen = []

    def output(rdd):
        seen.append(sorted(rdd.map(lambda kv: stops_at(5)(kv[1])).collect()))

    def op(stream):
        stream.foreachRDD(output)
        return stream

    with pytest.raises(JobFailedError, match="STOP_ITERATION_OCCURRED"):
        run_batches(sc, BATCHES, op, num_batches=3)
    assert [1, 2] in seen and [5] not in seen and [] not in seen


def test_driver_side_functions_raising_stopiteration_already_fail_the_batch(sc):
    # Audited: the driver calls foreachRDD and transform functions directly, not
    # from inside a loop, so StopIteration propagates; awaitTermination raises it.
    def output(rdd):
        exhausted()

    def op(stream):
        stream.foreachRDD(output)
        return stream

    with pytest.raises(StopIteration):
        run_batches(sc, BATCHES, op, num_batches=1)
    with pytest.raises(StopIteration):
        run_batches(sc, BATCHES, lambda s: s.transform(lambda rdd: exhausted()), num_batches=1)


# -- the error itself -------------------------------------------------------------------------

def test_task_errors_name_stopiteration_from_user_code_and_keep_others():
    from sluicegate.common.stopiteration import (
        UserCodeStopIteration, as_task_error, fail_on_stopiteration)

    try:
        exhausted()
    except StopIteration as exc:
        error = as_task_error(exc)
    assert isinstance(error, UserCodeStopIteration) and error.__cause__ is not None
    assert str(error).startswith("[STOP_ITERATION_OCCURRED] Caught StopIteration thrown from "
                                 "user's code; failing the task: ")
    assert f"raised in exhausted at {THIS_FILE}" in str(error)

    def generator():
        yield exhausted()

    with pytest.raises(RuntimeError) as info:
        list(generator())
    assert isinstance(as_task_error(info.value), UserCodeStopIteration)
    other = ValueError("not ours to rename")
    assert as_task_error(other) is other

    merge = fail_on_stopiteration(lambda a, b: stops_at(3)(a + b))
    assert merge(1, 1) == 2
    with pytest.raises(UserCodeStopIteration, match="STOP_ITERATION_OCCURRED"):
        merge(1, 2)


# -- a SparkContext inside a task ----------------------------------------------------------------

def test_creating_a_spark_context_in_a_task_fails_as_in_pyspark(sc):
    def new_context(_):
        inner = SparkContext(conf=SparkConf().setMaster("local[1]").setAppName("inner"))
        return inner.defaultParallelism

    for make in (new_context, lambda _: SparkContext.getOrCreate().defaultParallelism):
        with pytest.raises(JobFailedError) as info:
            sc.parallelize([1], 1).map(make).collect()
        assert "[CONTEXT_ONLY_VALID_ON_DRIVER]" in str(info.value)
        assert "SparkContext can only be used on the driver, not in code that runs on workers" \
            in str(info.value)


def test_a_thread_started_by_a_task_cannot_create_a_spark_context_either(sc):
    def from_a_thread(_):
        outcome = []

        def attempt():
            try:
                SparkContext(conf=SparkConf().setMaster("local[1]").setAppName("inner"))
                outcome.append("created")
            except RuntimeError as exc:
                outcome.append(str(exc))

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(60)
        return outcome

    [outcome] = sc.parallelize([1], 1).map(from_a_thread).collect()
    assert len(outcome) == 1 and outcome[0].startswith("[CONTEXT_ONLY_VALID_ON_DRIVER]")
