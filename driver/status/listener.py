"""Streaming events into the status store, and the live progress line.

``ConsoleProgress`` prints one compact line per completed batch to stderr
(records, rate, delays), as a Spark user would watch the Streaming tab. It
is on for local jobs and for jobs run with ``sluicegate submit``; set
``spark.sluicegate.progress`` to false, or SLUICEGATE_QUIET=1 (what
``submit --quiet`` does), to turn it off.
"""
from __future__ import annotations

import datetime
import sys

from ..streaming_scheduler.streaming_listener import StreamingListener
from .store import StatusStore


class StatusListener(StreamingListener):
    def __init__(self, store: StatusStore):
        self.store = store

    def onBatchSubmitted(self, batchSubmitted) -> None:
        self.store.batch_event(batchSubmitted.batchInfo(), False)

    def onBatchStarted(self, batchStarted) -> None:
        self.store.batch_event(batchStarted.batchInfo(), False)

    def onOutputOperationCompleted(self, outputOperationCompleted) -> None:
        self.store.output_event(outputOperationCompleted.outputOperationInfo())

    def onBatchCompleted(self, batchCompleted) -> None:
        self.store.batch_event(batchCompleted.batchInfo(), True)

    def onReceiverStarted(self, receiverStarted) -> None:
        self.store.receiver_event(receiverStarted.receiverInfo(), "ACTIVE")

    def onReceiverError(self, receiverError) -> None:
        self.store.receiver_event(receiverError.receiverInfo(), "ERROR")

    def onReceiverStopped(self, receiverStopped) -> None:
        self.store.receiver_event(receiverStopped.receiverInfo(), "STOPPED")


class ConsoleProgress(StreamingListener):
    def __init__(self, batch_ms: int, stream=None):
        self.batch_ms = batch_ms
        self.stream = stream

    def onBatchCompleted(self, batchCompleted) -> None:
        info = batchCompleted.batchInfo()
        when = datetime.datetime.fromtimestamp(info.batch_time_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
        records = info.numRecords()
        rate = records * 1000.0 / self.batch_ms if self.batch_ms else 0.0
        failed = " FAILED" if info.failed() else ""
        out = self.stream or sys.stderr
        print(f"[batch {when}] {records:,} records ({rate:,.0f}/s) | scheduling "
              f"{info.schedulingDelay()} ms | processing {info.processingDelay()} ms | total "
              f"{info.totalDelay()} ms{failed}", file=out, flush=True)
