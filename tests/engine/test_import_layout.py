"""A PySpark job ports by rewriting ``pyspark`` to ``sluicegate.driver`` in its imports:
every public PySpark core and streaming module path a job script imports from has
its mirror, holding the same names (the same objects as the flat
``sluicegate.driver`` imports)."""
from __future__ import annotations

import importlib
import io
import subprocess
import sys
import textwrap

import pytest

# PySpark module (after "pyspark") -> the names job scripts import from it.
MIRRORED = {
    "": ["SparkConf", "SparkContext", "RDD", "StorageLevel", "Broadcast", "Accumulator",
         "AccumulatorParam", "TaskContext"],
    ".conf": ["SparkConf"],
    ".context": ["SparkContext"],
    ".rdd": ["RDD", "portable_hash"],
    ".storagelevel": ["StorageLevel"],
    ".taskcontext": ["TaskContext"],
    ".accumulators": ["Accumulator", "AccumulatorParam"],
    ".broadcast": ["Broadcast"],
    ".resultiterable": ["ResultIterable"],
    ".serializers": ["PickleSerializer", "CPickleSerializer", "CloudPickleSerializer",
                     "MarshalSerializer", "AutoBatchedSerializer", "BatchedSerializer",
                     "UTF8Deserializer"],
    ".statcounter": ["StatCounter"],
    ".files": ["SparkFiles"],
    ".status": ["StatusTracker"],
    ".streaming": ["StreamingContext", "DStream", "StreamingListener"],
    ".streaming.context": ["StreamingContext"],
    ".streaming.dstream": ["DStream"],
    ".streaming.listener": ["StreamingListener"],
}


@pytest.mark.parametrize("suffix", sorted(MIRRORED))
def test_every_mirrored_module_has_pysparks_names(suffix):
    module = importlib.import_module("sluicegate.driver" + suffix)
    missing = [name for name in MIRRORED[suffix] if not hasattr(module, name)]
    assert not missing, f"sluicegate.driver{suffix} lacks {missing}"


@pytest.mark.parametrize("suffix", sorted(MIRRORED))
def test_pyspark_has_the_same_module_and_names(suffix):
    """The list above is PySpark's own: each path and name exists in PySpark 4."""
    pytest.importorskip("pyspark")
    module = importlib.import_module("pyspark" + suffix)
    assert all(hasattr(module, name) for name in MIRRORED[suffix])


def test_mirrors_hold_the_flat_imports_objects():
    import sluicegate.driver as flat
    from sluicegate.driver.context import SparkContext
    from sluicegate.driver.streaming.context import StreamingContext
    from sluicegate.driver.streaming.dstream import DStream
    from sluicegate.driver.streaming.listener import StreamingListener

    assert SparkContext is flat.SparkContext
    assert StreamingContext is flat.StreamingContext
    assert DStream is flat.DStream
    assert StreamingListener is flat.StreamingListener
    for suffix, names in MIRRORED.items():
        module = importlib.import_module("sluicegate.driver" + suffix)
        for name in names:
            if hasattr(flat, name):
                assert getattr(module, name) is getattr(flat, name), f"{suffix}.{name}"


@pytest.mark.parametrize("suffix", sorted(s for s in MIRRORED if s))
def test_each_mirror_imports_first_in_a_fresh_interpreter(suffix):
    """No import cycle: each path works as the first import of a job script."""
    names = ", ".join(MIRRORED[suffix])
    result = subprocess.run([sys.executable, "-c", f"from sluicegate.driver{suffix} import {names}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


PYSPARK_JOB_IMPORTS = textwrap.dedent("""
    from pyspark import SparkConf, SparkContext, Accumulator, Broadcast, RDD
    from pyspark.streaming import StreamingContext, DStream
    from pyspark.streaming.listener import StreamingListener
    from pyspark.rdd import RDD, portable_hash
    from pyspark.storagelevel import StorageLevel
    from pyspark.taskcontext import TaskContext
    from pyspark.accumulators import AccumulatorParam
    from pyspark.broadcast import Broadcast
    from pyspark.resultiterable import ResultIterable
    from pyspark.serializers import MarshalSerializer, PickleSerializer
    from pyspark.context import SparkContext
    from pyspark.conf import SparkConf
    import pyspark.streaming.dstream
    print("IMPORTED", StreamingContext.__module__)
""")


def test_a_mechanical_rewrite_of_a_pyspark_jobs_imports_works():
    script = PYSPARK_JOB_IMPORTS.replace("pyspark", "sluicegate.driver")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "IMPORTED sluicegate.driver.context.streaming_context" in result.stdout


@pytest.mark.parametrize("name", ["PickleSerializer", "CPickleSerializer", "CloudPickleSerializer",
                                  "MarshalSerializer"])
def test_serializers_round_trip_objects_and_framed_streams(name):
    from sluicegate.driver import serializers

    serializer = getattr(serializers, name)()
    records = [1, "two", [3.0, None], {"four": (4,)}]  # what marshal can take too
    assert [serializer.loads(serializer.dumps(r)) for r in records] == records
    stream = io.BytesIO()
    serializer.dump_stream(records, stream)
    stream.seek(0)
    assert list(serializer.load_stream(stream)) == records
    for batched in (serializers.BatchedSerializer(serializer, 3),
                    serializers.BatchedSerializer(serializer),
                    serializers.AutoBatchedSerializer(serializer)):
        stream = io.BytesIO()
        batched.dump_stream(iter(range(1000)), stream)
        stream.seek(0)
        assert list(batched.load_stream(stream)) == list(range(1000))


def test_cloudpickle_serializer_carries_functions():
    from sluicegate.driver.serializers import CloudPickleSerializer

    serializer = CloudPickleSerializer()
    offset = 7
    assert serializer.loads(serializer.dumps(lambda x: x + offset))(1) == 8


def test_utf8_deserializer_reads_framed_text():
    from sluicegate.driver.serializers import UTF8Deserializer

    stream = io.BytesIO()
    UTF8Deserializer().dump_stream(["héllo", "wörld"], stream)
    stream.seek(0)
    assert list(UTF8Deserializer().load_stream(stream)) == ["héllo", "wörld"]
    stream.seek(0)
    assert list(UTF8Deserializer(use_unicode=False).load_stream(stream)) == \
        ["héllo".encode(), "wörld".encode()]
