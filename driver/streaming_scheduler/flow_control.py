"""Flow control of one streaming context: backpressure, bounded receiver buffers,
and a cap on queued batches.

* **Backpressure** (``spark.streaming.backpressure.enabled``, as Spark): each
  input stream gets a ``RateController``, a listener that feeds every
  completed batch to a PID estimator (``rate_estimator``) and publishes the
  new rate -- to a receiver's ``ReceiverIntake`` (never above
  ``spark.streaming.receiver.maxRate``), or to any other input that has
  ``set_rate_limit(records_per_s)`` (the Kafka direct stream caps its next
  offset ranges with it). ``spark.streaming.backpressure.initialRate`` is the
  limit until the first estimate.
* **Bounded buffers**: every receiver's ``store()`` waits while its data that
  no batch has finished with exceeds ``spark.sluicegate.receiver.maxBufferBytes``.
* **Queued batches**: the job generator waits while
  ``spark.sluicegate.maxQueuedBatches`` batches are generated and unfinished.
  The batch times stay on their grid; a late batch takes all the blocks that
  arrived meanwhile, so no stored record is dropped, and once receivers'
  buffers are full their ``store()`` waits too: a stalled output holds the
  sources, not the driver's memory.

What it does is visible: the rate limit of each input in its batches'
``StreamInputInfo.metadata()["rateLimit"]``, in ``/metrics``
(``sluicegate_input_rate_limit``, ``sluicegate_receiver_buffer_bytes``,
``sluicegate_receiver_buffer_full_seconds_total``, ``sluicegate_queued_batches``,
``sluicegate_batch_queue_full_total``) and on the status pages (``describe``).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sluicegate.common import config as cfg

from .rate_estimator import PidSettings, PIDRateEstimator
from .receiver_intake import ReceiverIntake
from .streaming_listener import StreamingListener

log = logging.getLogger("sluicegate.streaming.flow")

WATCH_RUNNING_S = 0.1  # how often running batches are checked for an overrun
QUEUE_WARNING_EVERY_S = 30.0  # a full batch queue is named in a warning at most this often
RATE_LIMIT_KEY = "rateLimit"  # StreamInputInfo.metadata(): records/s in force for the input


class RateController(StreamingListener):
    """Backpressure for one input stream: after each completed batch that holds the
    stream's input, a new rate from the estimator, handed to ``publish``.

    ``latest_rate()`` is the rate in force (records/s; ``None`` before the first
    estimate when no initial rate is set), for inputs that read it instead of
    being told (``publish`` may do nothing).

    Beyond Spark: while a batch runs longer than the batch interval, the job has
    shown it takes at most ``records / time so far`` per second, so ``check_running``
    (called a few times a second) lowers the rate to that at once instead of
    letting the stream ingest unlimited until the batch completes. It only ever
    lowers the rate; the next completed batch's estimate replaces it."""

    def __init__(self, stream_id: int, estimator: PIDRateEstimator,
                 publish: Callable[[float], object] = lambda rate: None,
                 initial_rate: float | None = None):
        self.stream_id = stream_id
        self.estimator = estimator
        self.publish = publish
        self._rate = initial_rate
        self.updates = 0
        self._running: dict[int, tuple[int, int]] = {}  # batch ms -> (started ms, records)

    def latest_rate(self) -> float | None:
        return self._rate

    def onBatchStarted(self, batchStarted) -> None:
        info = batchStarted.batchInfo()
        stream_input = info.streamIdToInputInfo().get(self.stream_id)
        if stream_input is not None and stream_input.numRecords() > 0:
            self._running[info.batch_time_ms] = (info.processingStartTime(),
                                                 stream_input.numRecords())

    def check_running(self, now_ms: int) -> float | None:
        """Lower the rate to what an overrunning batch has shown; the new rate, if any."""
        bound = None
        for started_ms, records in list(self._running.values()):
            elapsed_ms = now_ms - started_ms
            if elapsed_ms > self.estimator.batch_interval_ms:
                shown = records * 1000.0 / elapsed_ms
                bound = shown if bound is None else min(bound, shown)
        if bound is None:
            return None
        bound = max(bound, self.estimator.settings.min_rate)
        if self._rate is not None and bound >= 0.9 * self._rate:
            return None
        self._rate = bound
        self.publish(bound)
        log.debug("stream %s: a batch overruns; rate limit %.0f records/s", self.stream_id, bound)
        return bound

    def onBatchCompleted(self, batchCompleted) -> None:
        info = batchCompleted.batchInfo()
        self._running.pop(info.batch_time_ms, None)
        stream_input = info.streamIdToInputInfo().get(self.stream_id)
        if stream_input is None or info.processingEndTime() < 0:
            return
        # Spark's scheduling delay, but (1) counted from the batch time: under the cap on
        # queued batches a batch is generated late, and its lag must count; and (2) at least
        # how late the next batch already is, still waiting behind this one: the backlog as
        # it is now, one batch sooner than the next completion would tell it.
        next_batch_ms = info.batch_time_ms + self.estimator.batch_interval_ms
        waited = max(info.schedulingDelay(), info.processingStartTime() - info.batch_time_ms,
                     info.processingEndTime() - next_batch_ms)
        rate = self.estimator.compute(info.processingEndTime(), stream_input.numRecords(),
                                      info.processingDelay(), waited)
        if rate is None:
            return
        self._rate = rate
        self.updates += 1
        self.publish(rate)
        log.debug("stream %s: rate limit %.0f records/s after batch %s", self.stream_id, rate,
                  info.batch_time_ms)


class FlowControl:
    """The flow control of one StreamingContext (see the module docstring)."""

    def __init__(self, conf: dict, batch_ms: int, pending_batches: Callable[[], int],
                 wait_for_fewer: Callable[[int, float], None]):
        """``pending_batches()``: batches generated and not finished;
        ``wait_for_fewer(n, timeout_s)`` returns once fewer than ``n`` are (or later)."""
        self.batch_ms = batch_ms
        self.pending_batches = pending_batches
        self.wait_for_fewer = wait_for_fewer
        self.backpressure = cfg.get_setting(conf, cfg.BACKPRESSURE_ENABLED)
        self.max_rate = cfg.get_setting(conf, cfg.STREAMING_RECEIVER_MAX_RATE)
        self.initial_rate = cfg.get_setting(conf, cfg.BACKPRESSURE_INITIAL_RATE)
        self.max_buffer_bytes = cfg.get_setting(conf, cfg.RECEIVER_MAX_BUFFER_BYTES)
        self.max_queued = cfg.get_setting(conf, cfg.MAX_QUEUED_BATCHES)
        self.block_interval_s = cfg.get_setting(conf, cfg.STREAMING_BLOCK_INTERVAL)
        self.pid = PidSettings(cfg.get_setting(conf, cfg.BACKPRESSURE_PID_PROPORTIONAL),
                               cfg.get_setting(conf, cfg.BACKPRESSURE_PID_INTEGRAL),
                               cfg.get_setting(conf, cfg.BACKPRESSURE_PID_DERIVED),
                               cfg.get_setting(conf, cfg.BACKPRESSURE_PID_MIN_RATE))
        estimator = cfg.get_setting(conf, cfg.BACKPRESSURE_ESTIMATOR)
        if self.backpressure:
            if estimator != "pid":
                raise ValueError(f"Unknown rate estimator: {estimator} "
                                 f"({cfg.BACKPRESSURE_ESTIMATOR}; only 'pid' exists)")
            self.pid.check()
        if self.max_buffer_bytes <= 0:
            raise ValueError(f"{cfg.RECEIVER_MAX_BUFFER_BYTES} must be positive, got "
                             f"{self.max_buffer_bytes}")
        self.intakes: dict[int, ReceiverIntake] = {}
        self.controllers: dict[int, RateController] = {}
        self.rate_inputs: dict[int, object] = {}  # inputs told their rate (set_rate_limit)
        self.queue_full_episodes = 0
        self.queue_full_s = 0.0
        self.queue_full_since: float | None = None
        self._last_queue_warning_s = -QUEUE_WARNING_EVERY_S
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- wiring (JobScheduler.start) -----------------------------------------------------------
    def intake_for(self, supervisor) -> ReceiverIntake:
        """The intake of a receiver (made once per stream: a restarted receiver keeps its
        limit and its buffer's account). A receiver in the driver gets it as its block
        generator's gate, which every store passes first; a receiver in a process of its
        own (``make_intake``) gets one that also tells the process."""
        stream_id = supervisor.stream_id
        intake = self.intakes.get(stream_id)
        if intake is None:
            burst_s = min(1.0, self.batch_ms / 1000.0)
            make = getattr(supervisor, "make_intake", None)
            if make is not None:
                intake = make(self.max_rate, self.max_buffer_bytes, burst_s)
            else:
                intake = ReceiverIntake(stream_id, self.max_rate, self.max_buffer_bytes,
                                        burst_s=burst_s, buffered=supervisor.generator.buffered)
            if self.backpressure and self.initial_rate:
                intake.set_rate(self.initial_rate)
            self.intakes[stream_id] = intake
        if getattr(supervisor, "make_intake", None) is None:
            supervisor.generator.limiter = intake
        return intake

    def attach(self, supervisors: Iterable, input_ops: Iterable, add_listener: Callable) -> None:
        """Put every receiver behind its intake and, with backpressure, give every input
        stream a rate controller (a listener on the streaming bus)."""
        for supervisor in supervisors:
            self.intake_for(supervisor)
        if not self.backpressure:
            return
        for op in input_ops:
            stream_id = op.stream_id
            if stream_id in self.controllers:
                continue
            intake = self.intakes.get(stream_id)
            if intake is not None:
                publish = intake.set_rate
            elif hasattr(op, "set_rate_limit"):
                publish = op.set_rate_limit
                self.rate_inputs[stream_id] = op
                if self.initial_rate:
                    op.set_rate_limit(self.initial_rate)
            else:
                continue  # queue and file streams take what is there
            controller = RateController(stream_id, PIDRateEstimator(self.batch_ms, self.pid),
                                        publish, self.initial_rate or None)
            self.controllers[stream_id] = controller
            add_listener(controller)
        if self.controllers:
            self._ticker = threading.Thread(target=self._watch_running, name="backpressure-watch",
                                            daemon=True)
            self._ticker.start()
            log.info("backpressure on for input streams %s (PID %s, initial rate %s)",
                     sorted(self.controllers), self.pid,
                     f"{self.initial_rate:g}/s" if self.initial_rate else "none")

    def _watch_running(self) -> None:
        while not self._stopped.wait(WATCH_RUNNING_S):
            now_ms = int(time.time() * 1000)
            for controller in list(self.controllers.values()):
                try:
                    controller.check_running(now_ms)
                except Exception:  # noqa: BLE001 - e.g. an input's set_rate_limit; keep watching
                    log.exception("backpressure of stream %s", controller.stream_id)

    def stop(self) -> None:
        self._stopped.set()

    def controller(self, stream_id: int) -> RateController | None:
        """The rate controller of an input stream (``latest_rate()``), if backpressure is on."""
        return self.controllers.get(stream_id)

    # -- the limit in force -------------------------------------------------------------------
    def rate_limit(self, stream_id: int) -> float | None:
        """The records/s an input stream may take now (None: no limit)."""
        intake = self.intakes.get(stream_id)
        if intake is not None:
            return intake.limit
        controller = self.controllers.get(stream_id)
        return controller.latest_rate() if controller is not None else None

    def input_metadata(self, stream_id: int, notes: dict) -> dict:
        """A batch's input metadata with the rate limit in force, if any."""
        limit = self.rate_limit(stream_id)
        if limit is None:
            return notes
        return {**notes, RATE_LIMIT_KEY: round(limit, 1)}

    # -- buffers --------------------------------------------------------------------------------
    def block_stored(self, stream_id: int, block_id: str, num_bytes: int, records: int) -> None:
        intake = self.intakes.get(stream_id)
        if intake is not None:
            intake.block_stored(block_id, num_bytes, records)

    def batch_done(self, time_ms: int, blocks_of: Callable[[int, int], list]) -> None:
        """A batch finished: its blocks no longer count against their receivers' buffers."""
        for stream_id, intake in self.intakes.items():
            intake.release([info.block_id for info in blocks_of(time_ms, stream_id)])

    # -- the queue of batches ---------------------------------------------------------------------
    def wait_for_batch_room(self, time_ms: int, stop: threading.Event) -> bool:
        """Called before generating the batch at ``time_ms``: wait while the queue is full.
        False if ``stop`` was set meanwhile."""
        cap = self.max_queued
        if cap <= 0 or self.pending_batches() < cap:
            return not stop.is_set()
        started = time.monotonic()
        with self._lock:
            self.queue_full_episodes += 1
            self.queue_full_since = started
            quiet = started - self._last_queue_warning_s < QUEUE_WARNING_EVERY_S
            if not quiet:
                self._last_queue_warning_s = started
        (log.debug if quiet else log.warning)("%d batches are queued (%s=%d): the batch at %s waits for one to finish; "
                    "receivers' store() blocks once their buffers are full. The output is slower "
                    "than the input%s.", self.pending_batches(), cfg.MAX_QUEUED_BATCHES, cap,
                    time_ms, "" if self.backpressure else
                    f" (set {cfg.BACKPRESSURE_ENABLED}=true to match the input to it)")
        try:
            while self.pending_batches() >= cap:
                if stop.is_set():
                    return False
                self.wait_for_fewer(cap, 0.1)
        finally:
            waited = time.monotonic() - started
            with self._lock:
                self.queue_full_s += waited
                self.queue_full_since = None
        (log.debug if quiet else log.info)(
            "the batch queue has room again after %.1fs; generating the batch at %s", waited, time_ms)
        return not stop.is_set()

    # -- what it shows ------------------------------------------------------------------------------
    def describe(self) -> dict:
        """For the status pages and the REST API."""
        streams = sorted(set(self.intakes) | set(self.controllers))
        return {
            "backpressure": self.backpressure,
            "max_queued_batches": self.max_queued,
            "queued_batches": self.pending_batches(),
            "batch_queue_full_episodes": self.queue_full_episodes,
            "streams": {sid: {
                "rate_limit": self.rate_limit(sid),
                "buffer_bytes": self.intakes[sid].buffer_bytes() if sid in self.intakes else None,
                "max_buffer_bytes": self.max_buffer_bytes if sid in self.intakes else None,
                "buffer_full": bool(sid in self.intakes and self.intakes[sid].waiting),
            } for sid in streams},
        }

    def metrics(self) -> "FlowMetrics":
        """A Prometheus collector of this flow control (for the application's registry)."""
        return FlowMetrics(self)


class FlowMetrics:
    """What ``FlowControl`` shows in ``/metrics``, read when scraped."""

    def __init__(self, flow: FlowControl):
        self.flow = flow

    def collect(self):
        flow = self.flow
        limit = GaugeMetricFamily("sluicegate_input_rate_limit",
                                  "Records per second each input stream may take now "
                                  "(maxRate and backpressure); absent: no limit", labels=["stream"])
        buffered = GaugeMetricFamily("sluicegate_receiver_buffer_bytes",
                                     "Bytes a receiver stored that no batch has finished with",
                                     labels=["stream"])
        full = CounterMetricFamily("sluicegate_receiver_buffer_full_seconds",
                                   "Seconds store() waited for room in its receiver's buffer",
                                   labels=["stream"])
        for sid in sorted(set(flow.intakes) | set(flow.controllers)):
            rate = flow.rate_limit(sid)
            if rate is not None:
                limit.add_metric([str(sid)], rate)
            intake = flow.intakes.get(sid)
            if intake is not None:
                buffered.add_metric([str(sid)], intake.buffer_bytes())
                full.add_metric([str(sid)], intake.full_wait_s)
        queued = GaugeMetricFamily("sluicegate_queued_batches",
                                   "Streaming batches generated and not finished")
        queued.add_metric([], flow.pending_batches())
        episodes = CounterMetricFamily("sluicegate_batch_queue_full",
                                       "Times the next batch waited for "
                                       "spark.sluicegate.maxQueuedBatches")
        episodes.add_metric([], flow.queue_full_episodes)
        return [limit, buffered, full, queued, episodes]
