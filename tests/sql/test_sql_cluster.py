"""DataFrames and SQL in cluster mode: a submitted job's aggregation, join and sort run on
the workers' executors (Arrow partitions through the peer-to-peer shuffle)."""
from __future__ import annotations

import textwrap

import pytest

from cluster_harness import LocalCluster

JOB = textwrap.dedent('''
    from sluicegate.driver.sql import SparkSession, functions as F
    spark = SparkSession.builder.appName("sql-on-a-cluster").getOrCreate()
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")  # a real shuffle join
    people = spark.range(0, 20000, numPartitions=8).select(
        (F.col("id") % 7).alias("dept"), F.col("id").alias("pay"))
    names = spark.createDataFrame([(d, f"dept{d}") for d in range(7)], ["dept", "name"])
    names.createOrReplaceTempView("names")
    people.createOrReplaceTempView("people")
    spark.sql("SELECT n.name, count(*) AS staff, sum(p.pay) AS total FROM people p "
              "JOIN names n ON p.dept = n.dept GROUP BY n.name ORDER BY n.name").show()
    print("executors:", spark.sparkContext.defaultParallelism)
''')


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path / "cluster")
    try:
        c.start_driver()
        c.start_worker("w1", cores=2)
        c.start_worker("w2", cores=1)
        yield c
    finally:
        c.close()


def test_a_sql_job_runs_on_the_cluster(cluster, tmp_path):
    script = tmp_path / "sql_job.py"
    script.write_text(JOB)
    done = cluster.submit(script, timeout_s=180)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = [f"|dept{d}|{len(range(d, 20000, 7)):5d}|{sum(range(d, 20000, 7)):8d}|"
                for d in range(7)]
    lines = done.stdout.splitlines()
    assert "| name|staff|   total|" in lines, done.stdout
    assert [line for line in lines if line.startswith("|dept")] == expected
