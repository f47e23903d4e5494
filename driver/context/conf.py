"""SparkConf: an application's settings, with PySpark's API; and the process's
system properties (``SparkContext.setSystemProperty``), which stand in for the
JVM's: a new ``SparkConf`` starts from their ``spark.*`` keys, as Spark's does.
"""
from __future__ import annotations

import getpass
import os
import platform
import tempfile
import threading
from typing import Iterable

from sluicegate.common import constants

_system_properties: dict[str, str] = {}
_system_lock = threading.Lock()


def set_system_property(key: str, value: str | None) -> None:
    """Set (or, with None, clear) a system property of this process."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a system property needs a non-empty str key, got {key!r}")
    with _system_lock:
        if value is None:
            _system_properties.pop(key, None)
        else:
            _system_properties[key] = str(value)


def get_system_property(key: str) -> str | None:
    """A system property set in this process, else one of the JVM's standard ones
    that has a meaning here (``user.name``, ``user.home``, ``user.dir``,
    ``java.io.tmpdir``, ``os.name``, ``os.arch``, the separators), else None."""
    with _system_lock:
        if key in _system_properties:
            return _system_properties[key]
    standard = _STANDARD.get(key)
    return standard() if standard is not None else None


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no name for this uid: as the JVM, fall back
        return "?"


_STANDARD = {
    "user.name": _user_name,
    "user.home": lambda: os.path.expanduser("~"),
    "user.dir": os.getcwd,
    "java.io.tmpdir": tempfile.gettempdir,
    "os.name": platform.system,
    "os.arch": platform.machine,
    "file.separator": lambda: os.sep,
    "path.separator": lambda: os.pathsep,
    "line.separator": lambda: os.linesep,
}


def _spark_system_properties() -> dict[str, str]:
    with _system_lock:
        return {k: v for k, v in _system_properties.items() if k.startswith("spark.")}


class SparkConf:
    """Key-value settings for a Spark application (PySpark's ``SparkConf``).

    Setters return the conf, so calls chain:
    ``SparkConf().setMaster("local[3]").setAppName("wordcount")``.
    With ``loadDefaults`` the conf starts from ``SLUICEGATE_CONF_*``
    environment variables (``SLUICEGATE_CONF_spark_task_maxFailures=2``) and
    from the ``spark.*`` system properties (``SparkContext.setSystemProperty``).
    """

    def __init__(self, loadDefaults: bool = True, _jvm=None, _jconf=None):
        self._conf: dict[str, str] = {}
        if loadDefaults:
            for name, value in os.environ.items():
                if name.startswith(constants.ENV_CONF_PREFIX):
                    self._conf[name[len(constants.ENV_CONF_PREFIX):].replace("_", ".")] = value
            self._conf.update(_spark_system_properties())

    def set(self, key: str, value) -> "SparkConf":
        """Set a configuration property."""
        if value is None:
            self._conf.pop(key, None)
        else:
            self._conf[key] = str(value)
        return self

    def setIfMissing(self, key: str, value) -> "SparkConf":
        if key not in self._conf:
            self.set(key, value)
        return self

    def setMaster(self, value: str) -> "SparkConf":
        """Set the master: ``local``, ``local[N]``, ``local[*]`` or ``sluicegate://HOST:PORT``."""
        return self.set("spark.master", value)

    def setAppName(self, value: str) -> "SparkConf":
        return self.set("spark.app.name", value)

    def setSparkHome(self, value: str) -> "SparkConf":
        return self.set("spark.home", value)

    def setExecutorEnv(self, key: str | None = None, value: str | None = None,
                       pairs: Iterable[tuple[str, str]] | None = None) -> "SparkConf":
        if (key is not None and pairs is not None) or (key is None and pairs is None):
            raise ValueError("Either pass one key-value pair or a list of pairs")
        for k, v in ([(key, value)] if key is not None else pairs):
            self.set("spark.executorEnv." + k, v)
        return self

    def setAll(self, pairs: Iterable[tuple[str, str]]) -> "SparkConf":
        for key, value in pairs:
            self.set(key, value)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        return self._conf.get(key, defaultValue)

    def getAll(self) -> list[tuple[str, str]]:
        return list(self._conf.items())

    def contains(self, key: str) -> bool:
        return key in self._conf

    def toDebugString(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self._conf.items())

    def as_dict(self) -> dict[str, str]:
        return dict(self._conf)

    def copy(self) -> "SparkConf":
        clone = SparkConf(loadDefaults=False)
        clone._conf = dict(self._conf)
        return clone

    def __repr__(self) -> str:
        return f"SparkConf({self._conf!r})"
