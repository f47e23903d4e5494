"""The status pages, rendered as HTML on the server (charts inline as SVG).

They refresh themselves every two seconds and need nothing from the
internet. Every page shows data from a ``StatusSource`` (an application's
driver, or the cluster service).
"""
from __future__ import annotations

import datetime
import html
import json

from .charts import line_chart

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}
header{background:#20344f;color:#fff;padding:10px 22px;display:flex;gap:24px;align-items:baseline}
header b{font-size:18px} header a{color:#cfe0ff;text-decoration:none} header a.on{color:#fff;font-weight:600}
main{padding:16px 22px} h2{font-size:17px;margin:18px 0 8px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin-bottom:12px}
th,td{border:1px solid #dde2ea;padding:4px 9px;text-align:right} th{background:#eef2f7}
td.l,th.l{text-align:left} tr.failed td{background:#fde8e8} pre{white-space:pre-wrap;font-size:12px;margin:0}
.charts{display:flex;flex-wrap:wrap;gap:10px} svg.chart{background:#fff;border:1px solid #dde2ea}
svg .title{font-size:12px;font-weight:600} svg .tick{font-size:10px;fill:#667}
svg .frame{fill:none;stroke:#ccd} svg .grid{stroke:#eef} svg .series{fill:none;stroke:#2f6fd0;stroke-width:1.6}
svg .dot{fill:#2f6fd0} svg .avg{stroke:#d0562f;stroke-dasharray:5 4}
.kv td{text-align:left} .muted{color:#778}
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def ms_time(ms: int | None) -> str:
    if not ms or ms < 0:
        return "-"
    stamp = datetime.datetime.fromtimestamp(ms / 1000)
    return stamp.strftime("%Y-%m-%d %H:%M:%S") + (f".{ms % 1000:03d}" if ms % 1000 else "")


def seconds_time(s: float | None) -> str:
    return "-" if not s else datetime.datetime.fromtimestamp(s).strftime("%Y-%m-%d %H:%M:%S")


def delay(ms) -> str:
    return "-" if ms is None or ms < 0 else f"{ms:,} ms"


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def layout(title: str, body: str, nav: list[tuple[str, str]], active: str, app: str,
           refresh: bool = True) -> str:
    links = "".join(f'<a href="{href}" class="{"on" if href == active else ""}">{esc(label)}</a>'
                    for label, href in nav)
    meta = '<meta http-equiv="refresh" content="2">' if refresh else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{esc(title)} - "
            f"{esc(app)}</title><style>{STYLE}</style></head><body><header><b>sluicegate</b>"
            f"<span class='muted'>{esc(app)}</span>{links}</header><main><h1 style='font-size:20px'>"
            f"{esc(title)}</h1>{body}</main></body></html>")


def table(headers: list[str], rows: list[list[str]], left: set[int] = frozenset(),
          row_classes: list[str] | None = None, table_id: str = "") -> str:
    head = "".join(f'<th class="{"l" if i in left else ""}">{esc(h)}</th>' for i, h in enumerate(headers))
    body = []
    for index, row in enumerate(rows):
        cls = row_classes[index] if row_classes else ""
        cells = "".join(f'<td class="{"l" if i in left else ""}">{cell}</td>' for i, cell in enumerate(row))
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# -- application pages -------------------------------------------------------------------

def streaming_page(summary: dict, batches: list[dict]) -> str:
    if not summary.get("batch_duration_ms"):
        return "<p>No streaming context has started in this application.</p>"
    completed = [b for b in batches if b["state"] in ("COMPLETED", "FAILED")][::-1]
    interval = summary["batch_duration_ms"]
    rate = [(b["batch_ms"], b["records"] * 1000.0 / interval) for b in completed]
    charts = "".join([
        line_chart(rate, "Input rate", "records/s", "chart-input-rate"),
        line_chart([(b["batch_ms"], b["scheduling_delay_ms"]) for b in completed],
                   "Scheduling delay", "ms", "chart-scheduling-delay"),
        line_chart([(b["batch_ms"], b["processing_ms"]) for b in completed],
                   "Processing time", "ms", "chart-processing-time"),
        line_chart([(b["batch_ms"], b["total_delay_ms"]) for b in completed],
                   "Total delay", "ms", "chart-total-delay"),
    ])
    facts = [("Batch interval", f"{interval:,} ms"),
             ("Running since", ms_time(summary.get("started_ms"))),
             ("Completed batches", f"{summary['batches_completed']:,}"),
             ("Failed batches", f"{summary['batches_failed']:,}"),
             ("Waiting batches", f"{summary['batches_pending']:,}")]
    flow = summary.get("flow_control") or {}
    if flow:  # backpressure and the batch queue (flow control)
        facts += [("Backpressure", "on" if flow.get("backpressure") else "off"),
                  ("Queued batches (cap)", f"{flow.get('queued_batches', 0)} "
                                           f"({flow.get('max_queued_batches') or 'none'})")]
    kv = "".join(f"<tr><th class='l'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    receivers = summary.get("receivers") or []
    streams = flow.get("streams") or {}

    def rate_limit(r):
        limit = r.get("rate_limit")
        full = (streams.get(r["stream_id"]) or {}).get("buffer_full")
        return (f"{limit:,.0f}/s" if limit else "none") + (" (buffer full)" if full else "")

    receiver_table = table(["Stream", "Receiver", "State", "Rate limit", "Last error"],
                           [[esc(r["stream_id"]), esc(r["name"]), esc(r["state"]), esc(rate_limit(r)),
                             esc(r["last_error"])]
                            for r in receivers], left={1, 2, 4}) if receivers else ""
    active = [b for b in batches if b["state"] in ("QUEUED", "PROCESSING")]
    done = [b for b in batches if b["state"] not in ("QUEUED", "PROCESSING")][:200]

    def rows(items):
        return [[f'<a href="/batch/{b["batch_ms"]}">{ms_time(b["batch_ms"])}</a>',
                 f"{b['records']:,}", delay(b["scheduling_delay_ms"]), delay(b["processing_ms"]),
                 delay(b["total_delay_ms"]), f"{b['output_ops_done']}/{b['output_ops']}",
                 esc(b["state"]), esc(b["failure"])] for b in items]

    headers = ["Batch time", "Input records", "Scheduling delay", "Processing time", "Total delay",
               "Output ops", "State", "Failure reason"]
    return (f"<table class='kv'>{kv}</table><h2>Over time</h2><div class='charts'>{charts}</div>"
            + (f"<h2>Receivers</h2>{receiver_table}" if receiver_table else "")
            + kafka_section(summary.get("kafka") or [], batches)
            + f"<h2>Active batches ({len(active)})</h2>"
            + table(headers, rows(active), left={0, 6, 7}, table_id="active-batches")
            + f"<h2>Completed batches (last {len(done)})</h2>"
            + table(headers, rows(done), left={0, 6, 7},
                    row_classes=["failed" if b["failure"] else "" for b in done],
                    table_id="completed-batches"))


def _count(n) -> str:
    return "-" if n is None else f"{n:,}"


def kafka_section(streams: list[dict], batches: list[dict]) -> str:
    """Each Kafka direct stream: where every topic-partition stands after the newest
    batch (offset, records, consumer lag), its rate limit and its last broker error."""
    if not streams:
        return ""
    parts = []
    for view in streams:
        sid = view["stream_id"]
        lag = [(b["batch_ms"], b["kafka_lag"][sid]) for b in reversed(batches)
               if sid in b.get("kafka_lag", {}) and b["kafka_lag"][sid] is not None]
        facts = [("Newest batch", ms_time(view["batch_ms"])),
                 ("Records in it", _count(view["records"])),
                 ("Consumer lag (all partitions)", _count(view["total_lag"])),
                 ("Rate limit", f"{view['rate_limit']:,.0f}/s" if view.get("rate_limit") else "none"),
                 ("Batches without the brokers", _count(view["error_batches"]))]
        kv = "".join(f"<tr><th class='l'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
        error = ""
        if view.get("last_error"):
            now = " (now)" if view.get("error") else ""
            error = (f"<p class='kafka-error'><b>Last broker error{now}</b>, batch "
                     f"{ms_time(view['last_error_batch_ms'])}:</p><pre>{esc(view['last_error'])}</pre>")
        rows = [[esc(p["topic"]), esc(p["partition"]), _count(p["offset"]), _count(p["records"]),
                 _count(p["lag"])] for p in view["partitions"]]
        parts.append(
            f"<h2>Kafka direct stream {esc(sid)}</h2><table class='kv'>{kv}</table>{error}"
            + (line_chart(lag, "Consumer lag", "records", f"chart-kafka-lag-{sid}") if lag else "")
            + table(["Topic", "Partition", "Offset (next to read)", "Records in newest batch",
                     "Consumer lag"], rows, left={0}, table_id=f"kafka-partitions-{sid}"))
    return "".join(parts)


def tasks_table(tasks: list[dict]) -> str:
    rows, classes = [], []
    for t in tasks:
        error = f"<pre>{esc(t['error'])}\n{esc(t['traceback'])}</pre>" if t["error"] else ""
        rows.append([esc(t["tid"]), esc(t["partition"]), esc(t["attempt"]), esc(t["executor_id"]),
                     f"{t['duration_ms']:,.1f} ms", f"{t['records_in']:,}", f"{t['records_out']:,}",
                     size(t["shuffle_read_bytes"]), size(t["shuffle_write_bytes"]), esc(t["status"]),
                     error])
        classes.append("failed" if t["status"] != "SUCCESS" else "")
    return table(["Task", "Partition", "Attempt", "Worker", "Duration", "Records in", "Records out",
                  "Shuffle read", "Shuffle write", "Status", "Error"], rows, left={3, 9, 10},
                 row_classes=classes)


def job_sections(jobs: list[dict]) -> str:
    parts = []
    for job in jobs:
        parts.append(f"<h2>Job {job['job_id']}: {esc(job['description'])} -- {esc(job['status'])}"
                     f"{' in ' + str(job['duration_ms']) + ' ms' if job['duration_ms'] is not None else ''}</h2>")
        if job["error"]:
            parts.append(f"<pre class='failed'>{esc(job['error'])}</pre>")
        for stage in job["stages"]:
            parts.append(f"<p><b>Stage {stage['stage_id']}.{stage['attempt']}</b> ({esc(stage['kind'])}): "
                         f"{esc(stage['name'])} -- {stage['tasks_succeeded']}/{stage['num_tasks']} tasks"
                         f", shuffle read {size(stage['shuffle_read_bytes'])}, write "
                         f"{size(stage['shuffle_write_bytes'])}</p>")
            parts.append(tasks_table(stage["tasks"]))
    return "".join(parts)


def batch_page(detail: dict) -> str:
    facts = [("Batch time", ms_time(detail["batch_ms"])), ("State", detail["state"]),
             ("Input records", f"{detail['records']:,}"),
             ("Scheduling delay", delay(detail["scheduling_delay_ms"])),
             ("Processing time", delay(detail["processing_ms"])),
             ("Total delay", delay(detail["total_delay_ms"]))]
    kv = "".join(f"<tr><th class='l'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    inputs = ""
    if detail.get("input_metadata"):  # as Spark's batch page: each input's Description
        inputs = "<h2>Input metadata</h2>" + table(
            ["Input", "Records", "Metadata"],
            [[f"stream {esc(m['stream_id'])}", f"{m['records']:,}",
              f"<pre>{esc(m['description'])}</pre>"] for m in detail["input_metadata"]],
            left={0, 2}, table_id="input-metadata")
    for sid, kafka in (detail.get("kafka") or {}).items():
        if kafka.get("error"):
            inputs += (f"<p class='kafka-error'><b>Kafka stream {esc(sid)}: the brokers did not "
                       f"answer</b></p><pre>{esc(kafka['error'])}</pre>")
        inputs += f"<h2>Kafka stream {esc(sid)}: offsets</h2>" + table(
            ["Topic", "Partition", "From offset", "Until offset", "Records", "RDD partitions",
             "Lag after the batch"],
            [[esc(p["topic"]), esc(p["partition"]), _count(p["fromOffset"]),
              _count(p["untilOffset"]), _count(p["records"]), _count(p.get("splits")),
              _count(p.get("lag"))] for p in kafka["partitions"]],
            left={0}, table_id=f"kafka-offsets-{sid}")
    outputs = table(["Output op", "Name", "Where", "Duration", "Failure"],
                    [[esc(o["id"]), esc(o["name"]), esc(o["description"]),
                      delay(o["end_ms"] - o["start_ms"] if o["end_ms"] >= 0 else -1),
                      f"<pre>{esc(o['failure'])}</pre>" if o["failure"] else ""]
                     for o in detail["outputs"]], left={1, 2, 4})
    return (f"<table class='kv'>{kv}</table>{inputs}<h2>Output operations</h2>{outputs}"
            + job_sections(detail["jobs"]))


def jobs_page(jobs: list[dict]) -> str:
    rows = [[f'<a href="/job/{j["job_id"]}">{j["job_id"]}</a>', esc(j["description"]),
             ms_time(j["batch_ms"]) if j["batch_ms"] else "-", esc(j["status"]),
             "-" if j["duration_ms"] is None else f"{j['duration_ms']:,.1f} ms",
             esc(len(j["stage_ids"])), esc(j["error"][:200])] for j in jobs]
    return table(["Job", "Description", "Batch", "Status", "Duration", "Stages", "Error"], rows,
                 left={1, 3, 6}, row_classes=["failed" if j["error"] else "" for j in jobs],
                 table_id="jobs")


def job_page(detail: dict) -> str:
    return job_sections([detail])


def workers_page(workers: list[dict]) -> str:
    rows = [[esc(w["id"]), esc(w["host"]), esc(w["cores"]), esc(w.get("cores_used", "-")),
             size(w.get("memory_bytes", 0)), size(w.get("memory_used", 0)),
             esc(w.get("running_tasks", "-")),
             f"{w['running_task_ms'] / 1000:,.1f} s" if w.get("running_task_ms") else "-",
             esc(w.get("tasks_done", "-")),
             esc(w.get("tasks_failed", "-")), f"{w['last_heartbeat_s_ago']:.1f} s ago",
             esc(w["state"])] for w in workers]
    return table(["Worker", "Host", "Cores", "Cores used", "Memory", "Block memory used",
                  "Running tasks", "Running for", "Tasks done", "Tasks failed", "Last heartbeat",
                  "State"], rows, left={0, 1, 11}, row_classes=["failed" if w["state"] != "ALIVE" else "" for w in workers],
                 table_id="workers")


def cluster_jobs_page(jobs: list[dict]) -> str:
    def count(job: dict, key: str) -> str:
        return "-" if job.get(key) is None else f"{job[key]:,}"

    def name(job: dict) -> str:
        # As Spark's master page does, a running job's name links to its own status pages.
        url = job.get("ui_url") or ""
        if not url.startswith(("http://", "https://")):
            return esc(job["name"])
        return f'<a class="job-ui" href="{esc(url)}/" title="its status pages">{esc(job["name"])}</a>'

    rows = [[esc(j["job_id"]), name(j), esc(j["state"]), esc(j["owner"]),
             seconds_time(j["submitted"]), seconds_time(j["ended"]), esc(len(j["executors"])),
             "-" if j.get("cores_wanted") is None else (f"{j['cores_wanted']:,}" if j["cores_wanted"]
                                                       else "any"),
             count(j, "running_tasks"), count(j, "batches_completed"), count(j, "batches_failed"),
             esc(j["driver_endpoint"]), esc(j["message"])] for j in jobs]
    return table(["Job", "Name", "State", "Owner", "Started", "Ended", "Executors", "Cores wanted",
                  "Running tasks", "Batches", "Failed batches", "Driver", "Message"], rows,
                 left={1, 2, 3, 11, 12},
                 row_classes=["failed" if j["state"] == "FAILED" else "" for j in jobs],
                 table_id="cluster-jobs")


def as_json(data) -> bytes:
    return json.dumps(data, indent=1, default=str).encode()
