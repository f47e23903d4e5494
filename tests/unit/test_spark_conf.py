"""SparkConf as PySpark's (get/set/contains/setIfMissing/setExecutorEnv/copy, defaults
from ``SLUICEGATE_CONF_*``), the master URLs it accepts, and typed settings."""
from __future__ import annotations

import os

import pytest

from sluicegate.common import config as cfg
from sluicegate.driver import SparkConf
from sluicegate.driver.context.spark_context import parse_local_master, parse_master


# -- SparkConf ------------------------------------------------------------------------------------------------------

def test_spark_conf_api():
    conf = SparkConf(loadDefaults=False)
    assert conf.getAll() == []
    assert conf.setAll([("spark.a", "1"), ("spark.b", 2)]) is conf
    assert sorted(conf.getAll()) == [("spark.a", "1"), ("spark.b", "2")]  # values are strings
    assert conf.contains("spark.a") and not conf.contains("spark.c")
    assert conf.get("spark.a") == "1"
    assert conf.get("spark.c") is None
    assert conf.get("spark.c", "fallback") == "fallback"
    assert conf.get("spark.a", "fallback") == "1"
    assert conf.setIfMissing("spark.a", "changed") is conf
    assert conf.get("spark.a") == "1"
    conf.setIfMissing("spark.c", "3")
    assert conf.get("spark.c") == "3"
    conf.setMaster("local[2]").setAppName("app").setExecutorEnv("HOME_DIR", "/x")
    assert conf.get("spark.master") == "local[2]" and conf.get("spark.app.name") == "app"
    assert conf.get("spark.executorEnv.HOME_DIR") == "/x"
    conf.setExecutorEnv(pairs=[("A", "1"), ("B", "2")])
    assert conf.get("spark.executorEnv.B") == "2"
    with pytest.raises(ValueError):
        conf.setExecutorEnv("A", "1", pairs=[("B", "2")])
    clone = conf.copy()
    clone.set("spark.a", "other")
    assert conf.get("spark.a") == "1" and clone.get("spark.a") == "other"
    assert "spark.a=1" in conf.toDebugString().splitlines()


def test_spark_conf_defaults_from_the_environment(monkeypatch):
    monkeypatch.setenv("SLUICEGATE_CONF_spark_task_maxFailures", "7")
    assert SparkConf().get("spark.task.maxFailures") == "7"
    assert SparkConf(loadDefaults=False).get("spark.task.maxFailures") is None


def test_master_parsing():
    assert parse_local_master("local") == (1, None)
    assert parse_local_master("local[3]") == (3, None)
    assert parse_local_master("local[*]") == (os.cpu_count(), None)
    assert parse_local_master("local[2,4]") == (2, 4)
    assert parse_master("local[*]", {}).executors == os.cpu_count()
    for bad in ("local[0]", "locally", "local[x]", "yarn"):
        with pytest.raises(ValueError):
            parse_local_master(bad)


def test_graceful_stop_timeout_setting():
    setting = cfg.SETTINGS[cfg.STREAMING_GRACEFUL_STOP_TIMEOUT]
    assert setting.key == "spark.streaming.gracefulStopTimeout"
    # unset: the context uses ten batch durations, at least 10 s
    assert cfg.get_setting({}, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT) is None
    assert cfg.get_setting({setting.key: "5s"}, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT) == 5.0
    assert cfg.get_setting({setting.key: "2500"}, cfg.STREAMING_GRACEFUL_STOP_TIMEOUT) == 2.5  # ms
