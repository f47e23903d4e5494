"""The objects a StreamingListener receives have PySpark's accessor methods (its
py4j objects' names): StreamInputInfo, OutputOperationInfo, ReceiverInfo, BatchInfo."""
from __future__ import annotations

from sluicegate.driver.streaming_scheduler.streaming_listener import (
    BatchInfo, OutputOperationInfo, ReceiverInfo, StreamInputInfo)


def test_listener_info_objects_have_accessor_methods():
    inputs = StreamInputInfo(0, 5, {"Description": "5 lines"})
    assert inputs.inputStreamId() == 0 and inputs.numRecords() == 5
    assert inputs.metadata() == {"Description": "5 lines"}
    assert inputs.metadataDescription() == "5 lines"
    assert StreamInputInfo(1, 0).metadata() == {} and StreamInputInfo(1, 0).metadataDescription() is None
    output = OutputOperationInfo(1000, 2, "foreachRDD", "foreachRDD at job.py:12")
    assert output.description() == "foreachRDD at job.py:12" and output.name() == "foreachRDD"
    assert output.id() == 2 and output.batchTime().milliseconds() == 1000
    assert output.duration() == -1
    receiver = ReceiverInfo(3, "MyReceiver", True)
    assert (receiver.streamId(), receiver.name(), receiver.active()) == (3, "MyReceiver", True)
    assert receiver.location() == "driver" and receiver.executorId() == "driver"
    assert (receiver.lastErrorMessage(), receiver.lastError(), receiver.lastErrorTime()) == ("", "", -1)

    batch = BatchInfo(1000, submission_ms=1010)
    assert (batch.schedulingDelay(), batch.processingDelay(), batch.totalDelay()) == (-1, -1, -1)
    batch.processing_start_ms = 1030
    assert (batch.schedulingDelay(), batch.processingDelay(), batch.totalDelay()) == (20, -1, -1)
    batch.processing_end_ms = 1100
    # Spark: totalDelay = schedulingDelay + processingDelay (the batch time plays no part)
    assert (batch.schedulingDelay(), batch.processingDelay(), batch.totalDelay()) == (20, 70, 90)
