"""The status HTTP server: pages, the JSON API under ``/api/v1/``, ``/metrics``.

An application's driver serves its streaming page, batches, jobs and
workers (``spark.ui.port``, default 4040, or the next free port). The
cluster service serves its submitted jobs and workers. Both bind loopback
unless told otherwise (``spark.ui.bindAddress`` / ``--ui-host``).

Each connection gets a thread, so connections are bounded: one that sends
nothing for ``IDLE_TIMEOUT_S`` is closed, and at most ``MAX_CONNECTIONS`` are
open at once. When that many are open, a new one pushes out the oldest that
has not yet sent a whole request (a slow or idle client), so idle
connections can never lock the pages away; only if every one of them is
busy answering is the new one turned away.
"""
from __future__ import annotations

import errno
import logging
import re
import socket
import sys
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily

from . import pages, rebalance_api, spark_api, sql_api

log = logging.getLogger("sluicegate.status")

PORT_TRIES = 16
IDLE_TIMEOUT_S = 10.0  # a connection silent this long is closed
MAX_CONNECTIONS = 32  # connections (and so threads) open at once


class AppStatusSource:
    """What an application's driver shows."""

    kind = "app"

    def __init__(self, name: str, store, metrics, runtime, app_id: str = "app"):
        self.name = name
        self.app_id = app_id
        self.store = store
        self.metrics = metrics
        self.runtime = runtime
        self.loop_metrics = CollectorRegistry()
        self.loop_metrics.register(LoopEventCounts(runtime.endpoint))

    def nav(self) -> list[tuple[str, str]]:
        return [("Streaming", "/streaming"), ("Jobs", "/jobs"), ("Workers", "/workers")]

    def home(self) -> str:
        return "/streaming" if self.store.batch_duration_ms else "/jobs"

    def workers(self) -> list[dict]:
        endpoint = self.runtime.endpoint
        if not endpoint.alive:
            return []
        return endpoint.describe_executors(timeout_s=5.0)

    def metrics_text(self) -> bytes:
        return self.metrics.text() + generate_latest(self.loop_metrics)


class ServiceStatusSource:
    """What the cluster's driver service shows."""

    kind = "service"

    def __init__(self, service):
        self.service = service
        self.name = f"driver service {service.master_url}"
        self.registry = CollectorRegistry()
        workers = Gauge("sluicegate_service_workers", "Live workers", registry=self.registry)
        workers.set_function(lambda: sum(w.alive for w in list(service.workers.values())))
        cores = Gauge("sluicegate_service_cores", "Cores of live workers", registry=self.registry)
        cores.set_function(lambda: sum(w.cores for w in list(service.workers.values()) if w.alive))
        jobs = Gauge("sluicegate_service_jobs", "Jobs by state", ["state"], registry=self.registry)
        for state in ("RUNNING", "FINISHED", "FAILED", "KILLED", "LOST"):
            jobs.labels(state).set_function(
                lambda s=state: sum(j.state == s for j in list(service.jobs.values())))
        self.registry.register(LoopEventCounts(service))

    def nav(self) -> list[tuple[str, str]]:
        return [("Jobs", "/cluster"), ("Workers", "/workers")]

    def home(self) -> str:
        return "/cluster"

    def workers(self) -> list[dict]:
        # running tasks and memory used: as the jobs' drivers report their executors
        rows = self.service.describe_workers_now(timeout_s=5.0)
        for row in rows:
            row["id"] = row.pop("worker_id")
            row["state"] = "ALIVE" if row.pop("alive") else row["state"].upper()  # or STOPPED
        return rows

    def cluster_jobs(self) -> list[dict]:
        return self.service.describe_jobs_now(timeout_s=5.0)

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)


class LoopEventCounts:
    """``sluicegate_loop_events_total{event=...}``: the events a driver loop (the
    application's, or the cluster service's) has handled, by type."""

    def __init__(self, loop):
        self.loop = loop

    def collect(self):
        family = CounterMetricFamily("sluicegate_loop_events",
                                     "Events the driver's loop handled, by type", labels=["event"])
        for name, count in sorted(self.loop.event_counts.items()):
            family.add_metric([name], count)
        yield family


def _routes(source) -> list[tuple[re.Pattern, Callable]]:
    app = source.kind == "app"
    store = getattr(source, "store", None)

    def page(title, body_fn, active):
        return lambda m: ("text/html", pages.layout(title, body_fn(m), source.nav(), active,
                                                    source.name).encode())

    def api(fn):
        return lambda m: ("application/json", pages.as_json(fn(m)))

    routes = [
        (r"/", lambda m: ("redirect", source.home())),
        (r"/workers", page("Workers", lambda m: pages.workers_page(source.workers()), "/workers")),
        (r"/api/v1/workers", api(lambda m: source.workers())),
        (r"/metrics", lambda m: ("text/plain; version=0.0.4", source.metrics_text())),
    ]
    if app:
        routes += [
            (r"/streaming", page("Streaming", lambda m: pages.streaming_page(
                store.streaming_summary(), store.batch_list()), "/streaming")),
            (r"/batch/(\d+)", lambda m: _or_404(store.batch_detail(int(m.group(1))), lambda d: (
                "text/html", pages.layout(f"Batch {pages.ms_time(d['batch_ms'])}", pages.batch_page(d),
                                          source.nav(), "/streaming", source.name).encode()))),
            (r"/jobs", page("Jobs", lambda m: pages.jobs_page(store.job_list()), "/jobs")),
            (r"/job/(\d+)", lambda m: _or_404(store.job_detail(int(m.group(1))), lambda d: (
                "text/html", pages.layout(f"Job {d['job_id']}", pages.job_page(d), source.nav(),
                                          "/jobs", source.name).encode()))),
            (r"/api/v1/streaming", api(lambda m: store.streaming_summary())),
            (r"/api/v1/batches", api(lambda m: store.batch_list())),
            (r"/api/v1/batches/(\d+)", lambda m: _or_404(store.batch_detail(int(m.group(1))),
                                                         lambda d: ("application/json", pages.as_json(d)))),
            (r"/api/v1/jobs", api(lambda m: store.job_list())),
            (r"/api/v1/jobs/(\d+)", lambda m: _or_404(store.job_detail(int(m.group(1))),
                                                      lambda d: ("application/json", pages.as_json(d)))),
        ]
        routes += spark_api.routes(spark_api.SparkRestApi(source),
                                   lambda data: ("application/json", pages.as_json(data)),
                                   lambda why: ("404", why.encode()))
    else:
        routes += [
            (r"/cluster", page("Submitted jobs", lambda m: pages.cluster_jobs_page(source.cluster_jobs()),
                               "/cluster")),
            (r"/api/v1/jobs", api(lambda m: source.cluster_jobs())),
        ]
    return [(re.compile(pattern + "$"), handler) for pattern, handler in routes]


def _or_404(found, render):
    return ("404", b"not found") if found is None else render(found)


class _StatusRequestHandler(BaseHTTPRequestHandler):
    """One connection's requests: the pages and APIs of the server's ``source``, found
    by its ``routes`` (both set by ``StatusServer``)."""

    server_version = "sluicegate-status"
    timeout = IDLE_TIMEOUT_S  # for every read and write on the connection

    def do_GET(self):  # noqa: N802 - http.server's name
        source, routes = self.server.source, self.server.routes
        self.server.request_read(self.request)
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == sql_api.PATH and source.kind == "app":
            self._live_sql("GET", b"")
            return
        for pattern, handler in routes:
            match = pattern.match(path)
            if match is None:
                continue
            try:
                kind, body = handler(match)
            except Exception as exc:  # noqa: BLE001 - a page must not kill the server
                log.exception("status page %s failed", path)
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", str(exc).encode())
                return
            if kind == "redirect":
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", body)
                self.end_headers()
            elif kind == "404":
                self._reply(HTTPStatus.NOT_FOUND, "text/plain", body)
            else:
                self._reply(HTTPStatus.OK, kind, body)
            return
        self._reply(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

    def do_POST(self):  # noqa: N802 - live SQL, and rebalancing a cluster's job
        source = self.server.source
        self.server.request_read(self.request)
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if source.kind == "service" and rebalance_api.PATH.match(path):
            status, answer = rebalance_api.answer(source.service, self.path, self.headers,
                                                  sql_api.read_body(self) or b"")
            self._reply(status, "application/json", answer)
            return
        if path != sql_api.PATH or source.kind != "app":
            self._reply(HTTPStatus.NOT_FOUND, "text/plain", b"not found")
            return
        body = sql_api.read_body(self)
        if body is None:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "text/plain",
                        b"the query must come with a Content-Length of at most 1 MiB")
            return
        self._live_sql("POST", body)

    def _live_sql(self, method: str, body: bytes) -> None:
        status, answer = sql_api.answer(self.server.source, method, self.path, self.headers,
                                        body, self.client_address[0])
        self._reply(status, "application/json", answer)

    def _reply(self, status, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type + ("; charset=utf-8" if "text" in content_type
                                                         or "json" in content_type else ""))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


class StatusServer:
    def __init__(self, source, host: str, port: int):
        self.source = source
        routes = _routes(source)
        self.httpd = _bind(_StatusRequestHandler, host, port)
        self.httpd.source = source  # what its handlers serve (set before serving starts)
        self.httpd.routes = routes
        self.host = host
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="status-server",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "StatusServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, for at most ``MAX_CONNECTIONS`` connections."""

    daemon_threads = True

    def __init__(self, address, handler):
        self._lock = threading.Lock()
        self._open: set = set()  # connections that have a thread
        self._waiting: OrderedDict = OrderedDict()  # ... and have not sent a whole request yet
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        with self._lock:
            if len(self._open) >= MAX_CONNECTIONS:
                if not self._waiting:
                    log.warning("status server: refused a connection from %s: %s connections are "
                                "being answered", client_address[0], len(self._open))
                    self.shutdown_request(request)
                    return
                oldest, _ = self._waiting.popitem(last=False)
                self._open.discard(oldest)
                _hang_up(oldest)  # its thread reads the end of the stream and finishes
            self._open.add(request)
            self._waiting[request] = None
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open.discard(request)
                self._waiting.pop(request, None)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # timed out, hung up on, pushed out: nothing to report
            log.debug("status server: connection from %s ended: %r", client_address[0], error)
        else:
            log.exception("status server: a request from %s failed", client_address[0])

    def request_read(self, request) -> None:
        """The connection sent a whole request: it is being answered now."""
        with self._lock:
            self._waiting.pop(request, None)


def _hang_up(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # it went already


def _bind(handler, host: str, port: int) -> ThreadingHTTPServer:
    """Bind ``port``, or the next free one (Spark's UI does the same)."""
    last_error = None
    for candidate in ([port + i for i in range(PORT_TRIES)] if port else [0]):
        try:
            return _BoundedHTTPServer((host, candidate), handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            last_error = exc
    raise OSError(f"no free port for the status page in {port}..{port + PORT_TRIES - 1}: {last_error}")
