"""A job's link to a standalone cluster's driver service.

The job's driver registers itself (``RegisterApplication``, with the address
its executors should connect to) and the service starts executors for it on
the workers. The registration is repeated every few seconds: it doubles as
the job's heartbeat and re-registers the job if the service restarted. The
link is a ``common.dealer_link.DealerLink`` on a thread of its own: its tick
sends the registration and the reports, and other threads' messages go out
through its outbox.
The service tells the job when one of its executors is gone, which the job
treats as a lost executor at once instead of waiting for heartbeats.

Every second the job also reports its executors' running tasks and memory
(what their heartbeats told this driver) and its completed streaming
batches (``ApplicationStatus``), which ``sluicegate status`` shows.

The executor count can change while the job runs: streaming dynamic
allocation asks the service for a new total (``request_total``), and the
service tells the job to shrink after ``sluicegate rebalance`` lowered its
cores (``ExecutorTarget``): the job's ``ExecutorScaler`` drains the excess.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from sluicegate.common.constants import APP_REGISTER_RETRY_S, APP_REPORT_S, APP_REREGISTER_S
from sluicegate.common.dealer_link import DealerLink, Every
from sluicegate.common.protocol.cluster import (
    ApplicationRegistered, ApplicationStatus, ExecutorRemoved, RegisterApplication, SqlQuery)
from sluicegate.common.protocol.elastic import ExecutorTarget, RequestExecutors
from sluicegate.common.transport import Transport

log = logging.getLogger("sluicegate.driver.cluster")


class ClusterBackend:
    """A job's registration with the cluster service, and what the two tell each other."""

    def __init__(self, transport: Transport, service_endpoint: str, job_id: str, app_name: str,
                 driver_endpoint: str, cores_wanted: int,
                 on_executor_removed: Callable[[str, str], None], endpoint=None, status=None):
        self.transport = transport
        self.service_endpoint = service_endpoint
        self.job_id = job_id
        self.app_name = app_name
        self.driver_endpoint = driver_endpoint
        self.cores_wanted = cores_wanted
        self.on_executor_removed = on_executor_removed
        self.executors_planned = 0
        self.ui_url = ""  # the job's status pages, once they serve (the service links to them)
        self.endpoint = endpoint  # the job's DriverEndpoint: its executors' heartbeats
        self.batches = _BatchCounter()
        if status is not None:
            status.listeners.append(self.batches)  # told of every completed batch
        self.max_executors = None  # the service decides
        self._scaler = None
        self._registered = threading.Event()
        self._stop = threading.Event()
        self._registration: RegisterApplication | None = None  # made when the link starts
        self._register = Every(APP_REGISTER_RETRY_S)  # then every APP_REREGISTER_S: a heartbeat
        self._report = Every(APP_REPORT_S)
        self._link = DealerLink(transport, service_endpoint, f"app-{job_id}".encode(),
                                self._receive, tick=self._tick, poll_s=0.1, outbox=True,
                                peer="the service", logger=log)
        self._thread = threading.Thread(target=self._run, name="cluster-backend", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._registered.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"the driver service at {self.service_endpoint} did not accept "
                               f"this job within {timeout_s:.0f}s (is it running, with the same "
                               "secret?)")

    def _run(self) -> None:
        self._registration = RegisterApplication(self.job_id, self.app_name, self.driver_endpoint,
                                                 self.cores_wanted)
        try:
            self._link.serve(self._stop)
        finally:
            self._link.close(linger_ms=0)

    def _tick(self, now: float) -> None:
        if self._register.due(now):
            self._link.send(self._registration)
        if self._registered.is_set() and self._report.due(now):
            self._link.send(self._status())

    def _receive(self, message, now: float) -> None:
        if isinstance(message, ApplicationRegistered):
            if not self._registered.is_set():
                self.executors_planned = message.executors_planned
                self._register.interval_s = APP_REREGISTER_S
                self._registered.set()
        elif isinstance(message, ExecutorRemoved):
            self.on_executor_removed(message.executor_id, message.reason)
        elif isinstance(message, ExecutorTarget) and message.job_id == self.job_id:
            log.info("the service asks for at most %d executors (%s)", message.total,
                     message.reason)
            self.scaler.drain_to(message.total, message.reason)
        elif isinstance(message, SqlQuery) and message.job_id == self.job_id:
            # `sluicegate sql`: answered on a thread of its own, sent from here
            from .sql_answer import answer_in_background
            answer_in_background(message, self._link.post)

    def _status(self) -> ApplicationStatus:
        """This job's executors and batches, as the service shows them."""
        executors = []
        if self.endpoint is not None:
            # Read outside the loop thread that owns the registry, so that a busy loop never
            # holds this thread (and the registrations) up: ``alive()`` copies the registry
            # in one step, and the fields read are replaced whole, never changed in place.
            executors = [[e.executor_id, len(e.running),
                          int(max((r[2] for r in e.running_report), default=0)),
                          int(e.memory_used), int(e.rss_bytes)]
                         for e in self.endpoint.registry.alive()]
        return ApplicationStatus(self.job_id, executors, self.batches.completed,
                                 self.batches.failed, self.ui_url)

    @property
    def scaler(self):
        """This job's executor scaler (the service may ask it to shrink at any time)."""
        if self._scaler is None:
            from .scaling import ExecutorScaler
            self._scaler = ExecutorScaler(self.endpoint, self, local=False)
        return self._scaler

    def request_total(self, total: int) -> None:
        """Ask the service for ``total`` executors in all (dynamic allocation)."""
        self.cores_wanted = total
        self._link.post(RequestExecutors(self.job_id, total))

    def replace(self, executor_id: str, reason: str) -> None:
        """The service replaces lost executors; nothing to do here."""

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._link.wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


class _BatchCounter:
    """A status-store listener counting the job's finished batches (all of them, unlike
    the store, which keeps only the latest)."""

    def __init__(self) -> None:
        self.completed = 0  # failed ones included, as on the streaming page
        self.failed = 0

    def batch_completed(self, batch) -> None:
        self.completed += 1
        if batch.failure:
            self.failed += 1
