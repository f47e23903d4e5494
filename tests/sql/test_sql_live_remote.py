"""Live SQL from outside a running job: the status API in local mode
(``/api/v1/sql``) and ``sluicegate sql --job JOB`` in cluster mode.

A stateful stream is exposed with ``stream.asTable(name)``; queries from
another thread (HTTP) or another process (the CLI, through the driver service
and the job's authenticated channel) see its latest completed batch while the
stream goes on completing batches.
"""
from __future__ import annotations

import json
import socket
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cluster_harness import LocalCluster, wait_until

from sluicegate.driver import StreamingContext
from sluicegate.driver.sql import SparkSession


def add_counts(new_values, last):
    return sum(new_values) + (last or 0)


def get_sql(base: str, query: str, **params) -> tuple[int, dict]:
    url = f"{base}/api/v1/sql?" + urllib.parse.urlencode({"q": query, **params})
    return _open(urllib.request.Request(url))


def post_sql(base: str, body: bytes, content_type: str = "text/plain") -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/api/v1/sql", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    return _open(request)


def _open(request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- local mode: the status server's API ----------------------------------------------------

@pytest.fixture
def live_counts(sc, tmp_path):
    """A running word-count state exposed as ``word_counts``; after the queued batches it
    keeps completing empty batches (the state stays)."""
    sc.setCheckpointDir(str(tmp_path / "checkpoints"))
    ssc = StreamingContext(sc, 0.3)
    spark = SparkSession(sc)
    batches = [sc.parallelize(["a b a"]), sc.parallelize(["b c"]), sc.parallelize(["a"])]
    lines = ssc.queueStream(batches, oneAtATime=True, default=sc.parallelize([], 1))
    counts = lines.flatMap(lambda line: line.split(" ")).map(lambda w: (w, 1)) \
        .updateStateByKey(add_counts)
    table = counts.asTable("word_counts", ["word", "count"], session=spark)
    ssc.start()
    yield table
    ssc.stop(stopSparkContext=False, stopGraceFully=False)


FINAL = [["a", 3], ["b", 2], ["c", 1]]


def test_status_api_answers_live_sql_while_the_stream_runs(sc, live_counts):
    base = sc.uiWebUrl
    query = "SELECT word, count FROM word_counts ORDER BY count DESC, word"
    first = wait_until(lambda: (lambda r: r[0] == 200 and r[1]["rows"] == FINAL and r[1])(
        get_sql(base, query)), 60, what="the live table to show the third batch's state")
    assert first["columns"] == [{"name": "word", "type": "string"},
                                {"name": "count", "type": "bigint"}]
    assert first["truncated"] is False
    # asked again while later batches complete: the same state, from a later batch
    second = wait_until(lambda: (lambda r: r[0] == 200 and r[1]["batches"]["word_counts"]
                                 > first["batches"]["word_counts"] and r[1])(get_sql(base, query)),
                        60, what="an answer from a later batch")
    assert second["rows"] == FINAL
    # POST, as text and as JSON with a row limit
    status, body = post_sql(base, b"SELECT sum(count) AS n FROM word_counts")
    assert (status, body["rows"]) == (200, [[6]])
    status, body = post_sql(base, json.dumps({"query": query, "maxRows": 2}).encode(),
                            "application/json")
    assert (status, body["rows"], body["truncated"]) == (200, FINAL[:2], True)
    status, body = get_sql(base, "SHOW TABLES")
    assert status == 200 and ["", "word_counts", True] in body["rows"]
    status, body = get_sql(base, "DESCRIBE word_counts")
    assert (status, body["rows"]) == (200, [["word", "string", None], ["count", "bigint", None]])


def test_status_api_errors_say_what_is_wrong(sc, live_counts):
    base = sc.uiWebUrl
    wait_until(lambda: get_sql(base, "SELECT * FROM word_counts")[0] == 200, 60,
               what="the live table")
    status, body = get_sql(base, "SELEC word FROM word_counts")
    assert status == 400 and body["error"] == "PARSE"
    assert "[PARSE_SYNTAX_ERROR]" in body["message"]
    status, body = get_sql(base, "SELECT * FROM no_such_table")
    assert status == 400 and body["error"] == "ANALYSIS"
    assert "[TABLE_OR_VIEW_NOT_FOUND]" in body["message"] and "`no_such_table`" in body["message"]
    status, body = get_sql(base, "SELECT nope FROM word_counts")
    assert status == 400 and "[UNRESOLVED_COLUMN" in body["message"]
    for statement in ("DROP VIEW word_counts", "CREATE TEMP VIEW v AS SELECT 1",
                      "INSERT INTO word_counts VALUES ('x', 1)", "CACHE TABLE word_counts"):
        status, body = get_sql(base, statement)
        assert (status, body["error"]) == (400, "REFUSED"), statement
        assert "read-only" in body["message"]
    status, body = get_sql(base, "")
    assert (status, body["error"]) == (400, "REFUSED")
    status, body = get_sql(base, "SELECT 1", maxRows="many")
    assert (status, body["error"]) == (400, "REFUSED") and "maxRows" in body["message"]
    # a query slower than its timeout is cancelled (its tasks too) and says so
    SparkSession(sc).udf.register("slow_identity", slow_identity, "bigint")
    started = time.monotonic()
    status, body = get_sql(base, "SELECT slow_identity(count) FROM word_counts", timeout="1")
    assert (status, body["error"]) == (504, "TIMEOUT"), body
    assert "within 1s" in body["message"] and time.monotonic() - started < 20
    # the stream was not disturbed: the view still answers
    assert get_sql(base, "SELECT count(*) AS n FROM word_counts")[1]["rows"] == [[3]]


def slow_identity(value):
    time.sleep(30)
    return value



def this_hosts_address() -> str | None:
    """An address of this machine other than loopback (None: it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_status_api_from_another_host_needs_the_secret(own_context):
    address = this_hosts_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    sc = own_context("local[1]", spark__ui__bindAddress="0.0.0.0",
                     spark__authenticate__secret="live-sql-test-secret",
                     spark__sluicegate__progress="false")
    spark = SparkSession(sc)
    spark.createDataFrame([("a", 1)], ["word", "count"]).createOrReplaceTempView("counts")
    base = f"http://{address}:{urllib.parse.urlsplit(sc.uiWebUrl).port}"
    url = f"{base}/api/v1/sql?" + urllib.parse.urlencode({"q": "SELECT * FROM counts"})
    assert _open(urllib.request.Request(url))[0] == 403
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert _open(urllib.request.Request(url, headers=wrong))[0] == 403
    right = {"Authorization": "Bearer live-sql-test-secret"}
    assert _open(urllib.request.Request(url, headers=right)) == (
        200, {"columns": [{"name": "word", "type": "string"}, {"name": "count", "type": "bigint"}],
              "rows": [["a", 1]], "truncated": False, "batches": {}})


# -- cluster mode: `sluicegate sql --job JOB` -------------------------------------------------

# A word-count state over queued batches (then empty ones), exposed as `word_counts`.
LIVE_JOB = """
    import sys
    from sluicegate.driver import SparkContext, StreamingContext
    from sluicegate.driver.sql import SparkSession

    sc = SparkContext(appName="live-sql")
    sc.setCheckpointDir(sys.argv[1])
    spark = SparkSession(sc)
    ssc = StreamingContext(sc, 0.5)
    batches = [sc.parallelize(["sluice gate", "gate river"]), sc.parallelize(["gate lot"])]
    lines = ssc.queueStream(batches, oneAtATime=True, default=sc.parallelize([], 1))
    counts = lines.flatMap(lambda line: line.split(" ")).map(lambda w: (w, 1)) \\
        .updateStateByKey(lambda new, last: sum(new) + (last or 0))
    counts.asTable("word_counts", ["word", "count"], session=spark)
    ssc.start()
    ssc.awaitTermination()
"""

# A streaming job that never touches SQL.
PLAIN_JOB = """
    from sluicegate.driver import SparkContext, StreamingContext
    sc = SparkContext(appName="plain")
    ssc = StreamingContext(sc, 0.5)
    ssc.queueStream([], default=sc.parallelize([1], 1)).foreachRDD(lambda rdd: rdd.count())
    ssc.start()
    ssc.awaitTermination()
"""

EXPECTED_SHOW = """\
+------+-----+
|  word|count|
+------+-----+
|  gate|    3|
|   lot|    1|
| river|    1|
|sluice|    1|
+------+-----+
"""


@pytest.fixture(scope="module")
def sql_cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("sql-cluster"))
    try:
        c.start_driver()
        c.start_worker("w1", cores=2)
        yield c
    finally:
        c.close()


def submit_detached(cluster, tmp_path, name: str, source: str, *args: str) -> str:
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    done = cluster.submit(script, *args, options=["--detach", "--quiet"], timeout_s=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sql_cli_queries_a_running_jobs_live_table(sql_cluster, tmp_path):
    job_id = submit_detached(sql_cluster, tmp_path, "live.py", LIVE_JOB, str(tmp_path / "cp"))
    query = "SELECT word, count FROM word_counts ORDER BY count DESC, word"
    expected = [["gate", 3], ["lot", 1], ["river", 1], ["sluice", 1]]

    def answered():
        done = sql_cluster.cli("sql", "--job", job_id, "--json", query, timeout_s=90)
        return done.returncode == 0 and json.loads(done.stdout)["rows"] == expected \
            and json.loads(done.stdout)
    first = wait_until(answered, 120, what="the job's live table to show both batches")
    assert first["columns"] == [{"name": "word", "type": "string"},
                                {"name": "count", "type": "bigint"}]
    # asked again while the stream goes on: a later batch, the same state, as show() prints it
    time.sleep(1.0)
    done = sql_cluster.cli("sql", "--job", job_id, query, timeout_s=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout == EXPECTED_SHOW + "\n"
    again = sql_cluster.cli("sql", "--job", job_id, "--json", query, timeout_s=90)
    assert json.loads(again.stdout)["batches"]["word_counts"] > first["batches"]["word_counts"]
    done = sql_cluster.cli("sql", "--job", job_id, "-n", "2", query, timeout_s=90)
    assert done.stdout.endswith("only showing top 2 rows\n")

    # errors: bad SQL, an unknown table, a write, an unknown job, a job without SQL
    bad = sql_cluster.cli("sql", "--job", job_id, "SELEC word FROM word_counts")
    assert bad.returncode == 1 and "PARSE: " in bad.stderr and "[PARSE_SYNTAX_ERROR]" in bad.stderr
    missing = sql_cluster.cli("sql", "--job", job_id, "SELECT * FROM nowhere")
    assert missing.returncode == 1 and "[TABLE_OR_VIEW_NOT_FOUND]" in missing.stderr
    write = sql_cluster.cli("sql", "--job", job_id, "DROP VIEW word_counts")
    assert write.returncode == 1 and "REFUSED: live SQL is read-only" in write.stderr
    unknown = sql_cluster.cli("sql", "--job", "job-9999", "SELECT 1")
    assert unknown.returncode == 1 and "UNKNOWN_JOB: no job job-9999" in unknown.stderr
    plain_id = submit_detached(sql_cluster, tmp_path, "plain.py", PLAIN_JOB)
    wait_until(lambda: sql_cluster.polled_job(plain_id)["executors"], 60, what="executors")

    def no_session():
        done = sql_cluster.cli("sql", "--job", plain_id, "SELECT 1")
        return done.returncode == 1 and "NO_SQL_SESSION" in done.stderr and done
    assert "has no SQL session" in wait_until(no_session, 60, what="NO_SQL_SESSION").stderr
    # the live job ran on undisturbed
    assert sql_cluster.polled_job(job_id)["state"] == "RUNNING"
    for job in (job_id, plain_id):
        assert sql_cluster.cli("kill", job).returncode == 0
    wait_until(lambda: sql_cluster.polled_job(job_id)["state"] == "KILLED", 30, what="KILLED")
    ended = sql_cluster.cli("sql", "--job", job_id, "SELECT 1")
    assert ended.returncode == 1 and "NOT_RUNNING" in ended.stderr
