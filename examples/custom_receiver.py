"""A receiver written in Python: something PySpark cannot do.

This one polls a clock and stores a "tick" record with the current second
every 100 ms; swap the body of ``_poll`` for any source (a queue, an HTTP
API, a message bus client). Stops by itself after ten seconds.

Usage: custom_receiver.py
"""
import threading
import time

from sluicegate.driver import Receiver, SparkConf, SparkContext, StreamingContext


class TickReceiver(Receiver):
    """Stores ("tick", second) every interval until stopped."""

    def __init__(self, interval_s: float = 0.1):
        super().__init__()
        self.interval_s = interval_s

    def onStart(self):
        # onStart must not block: receive on our own thread.
        threading.Thread(target=self._poll, daemon=True).start()

    def onStop(self):
        pass  # the polling loop checks isStopped()

    def _poll(self):
        try:
            while not self.isStopped():
                self.store(("tick", int(time.time()) % 60))
                time.sleep(self.interval_s)
        except Exception as exc:  # a real source would reconnect
            self.restart("polling failed", exc)


if __name__ == "__main__":
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("CustomReceiver"))
    ssc = StreamingContext(sc, 1)
    ticks = ssc.receiverStream(TickReceiver())
    ticks.map(lambda kv: (kv[1], 1)).reduceByKey(lambda a, b: a + b).pprint()
    ssc.start()
    ssc.awaitTerminationOrTimeout(10)
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
