"""The job generator: a timer that fires at every batch time.

Batch times are multiples of the batch duration on the context's clock.
Each firing generates that batch (receivers' blocks claimed, RDDs built,
jobs handed to the batch runner); generating is quick, so when processing
falls behind, batches queue up and their scheduling delay shows it, as in
Spark. Unlike Spark, the queue is capped: before each batch the generator
asks ``wait_for_room`` (flow control's ``spark.sluicegate.maxQueuedBatches``)
and waits while the queue is full. Batch times stay on their grid; a batch
generated late takes all the data that arrived meanwhile, and the batches
that fell due while it waited follow at once.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

log = logging.getLogger("sluicegate.streaming")


def first_batch_time(now_ms: int, batch_ms: int) -> int:
    """The next multiple of the batch duration after ``now_ms``."""
    return (now_ms // batch_ms + 1) * batch_ms


class JobGenerator:
    def __init__(self, clock, batch_ms: int, generate: Callable[[int], None],
                 wait_for_room: Optional[Callable[[int, threading.Event], bool]] = None):
        """``wait_for_room(time_ms, stop)`` returns when the batch at ``time_ms`` may be
        generated (False: stop was set meanwhile)."""
        self.clock = clock
        self.batch_ms = batch_ms
        self.generate = generate
        self.wait_for_room = wait_for_room
        self.next_ms: int | None = None
        self.last_generated_ms: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, first_ms: int) -> None:
        self.next_ms = first_ms
        self._thread = threading.Thread(target=self._run, name="streaming-job-generator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.clock.wait_until(self.next_ms, self._stop):
            time_ms = self.next_ms
            if self.wait_for_room is not None and not self.wait_for_room(time_ms, self._stop):
                break
            try:
                self.generate(time_ms)
            except Exception:  # noqa: BLE001 - the timer must keep firing
                log.exception("could not generate the batch at %s", time_ms)
            self.last_generated_ms = time_ms
            self.next_ms = time_ms + self.batch_ms

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
