"""Mirrors ``pyspark.streaming.listener``: ``StreamingListener``, and the event and
info objects its callbacks receive (PySpark hands them over as py4j objects)."""
from ..streaming_scheduler.streaming_listener import (
    BatchInfo,
    OutputOperationInfo,
    ReceiverInfo,
    StreamingListener,
    StreamingListenerBatchCompleted,
    StreamingListenerBatchStarted,
    StreamingListenerBatchSubmitted,
    StreamingListenerOutputOperationCompleted,
    StreamingListenerOutputOperationStarted,
    StreamingListenerReceiverError,
    StreamingListenerReceiverStarted,
    StreamingListenerReceiverStopped,
    StreamingListenerStreamingStarted,
    StreamInputInfo,
)

__all__ = [
    "BatchInfo", "OutputOperationInfo", "ReceiverInfo", "StreamInputInfo", "StreamingListener",
    "StreamingListenerBatchCompleted", "StreamingListenerBatchStarted",
    "StreamingListenerBatchSubmitted", "StreamingListenerOutputOperationCompleted",
    "StreamingListenerOutputOperationStarted", "StreamingListenerReceiverError",
    "StreamingListenerReceiverStarted", "StreamingListenerReceiverStopped",
    "StreamingListenerStreamingStarted",
]
