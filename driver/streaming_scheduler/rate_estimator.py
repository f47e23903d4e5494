"""How fast an input stream should ingest: Spark's PID rate estimator (pure; no I/O).

After every completed batch the estimator is told the batch's time, its
records and its processing and scheduling delays, and answers with a new
ingestion rate (records per second) or ``None`` when the batch says nothing
useful (no records, no processing time, or out of order).

The controller's set point is its own previous answer: the *error* is how
far that rate is above the rate the job just processed at
(``records / processing delay``). A scheduling delay means records piled up
that earlier batches could not take; ``scheduling delay * processing rate /
batch interval`` is the rate at which that pile would drain within one
batch, the *historical error* (the integral term). The new rate is

    previous - proportional * error - integral * historical error
             - derived * d(error)/dt,     never below min_rate.

The first useful batch calibrates: its processing rate becomes the previous
rate. Spark answers nothing then (``compute`` returns None), so a job fed
far above its capacity runs unlimited until its second batch completes; here
that measured rate is the answer (``publish_calibration``, on by default):
the limit holds from the first completed batch on, and the pile-up that the
integral term must drain afterwards is smaller. The keys and defaults are
Spark's: ``spark.streaming.backpressure.pid.proportional`` (1.0),
``.integral`` (0.2), ``.derived`` (0.0), ``.minRate`` (100).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PidSettings:
    proportional: float = 1.0
    integral: float = 0.2
    derived: float = 0.0
    min_rate: float = 100.0

    def check(self) -> "PidSettings":
        for name in ("proportional", "integral", "derived"):
            if getattr(self, name) < 0:
                raise ValueError(f"spark.streaming.backpressure.pid.{name} must be >= 0, "
                                 f"got {getattr(self, name)}")
        if self.min_rate <= 0:
            raise ValueError("spark.streaming.backpressure.pid.minRate must be > 0 (a stream "
                             f"needs some data to measure its rate), got {self.min_rate}")
        return self


class PIDRateEstimator:
    """Spark's PID estimator for one input stream (``compute`` is thread-safe enough:
    one listener thread calls it)."""

    def __init__(self, batch_interval_ms: int, settings: PidSettings = PidSettings(),
                 publish_calibration: bool = True):
        if batch_interval_ms <= 0:
            raise ValueError(f"the batch interval must be positive, got {batch_interval_ms} ms")
        self.batch_interval_ms = batch_interval_ms
        self.settings = settings.check()
        self.publish_calibration = publish_calibration
        self._first = True
        self._latest_time_ms = -1
        self._latest_rate = -1.0
        self._latest_error = -1.0

    def compute(self, time_ms: int, records: int, processing_delay_ms: int,
                scheduling_delay_ms: int) -> float | None:
        """The new rate (records/s) after a batch that finished at ``time_ms``; None
        when there is nothing to learn from it (or it only calibrated)."""
        if time_ms <= self._latest_time_ms or records <= 0 or processing_delay_ms <= 0:
            return None
        s = self.settings
        since_update_s = (time_ms - self._latest_time_ms) / 1000.0
        processing_rate = records * 1000.0 / processing_delay_ms
        error = self._latest_rate - processing_rate
        historical_error = max(0, scheduling_delay_ms) * processing_rate / self.batch_interval_ms
        d_error = (error - self._latest_error) / since_update_s
        new_rate = max(s.min_rate, self._latest_rate - s.proportional * error
                       - s.integral * historical_error - s.derived * d_error)
        self._latest_time_ms = time_ms
        if self._first:
            self._first = False
            self._latest_rate = processing_rate
            self._latest_error = 0.0
            return max(s.min_rate, processing_rate) if self.publish_calibration else None
        self._latest_rate = new_rate
        self._latest_error = error
        return new_rate
