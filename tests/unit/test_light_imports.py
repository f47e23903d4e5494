"""``sluicegate worker`` runs on hosts that only execute: its code path must not
import the driver's job API (SparkContext, StreamingContext, the SQL layer),
and ``sluicegate.driver`` itself imports its public names only when used."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["sluicegate.driver.context.spark_context", "sluicegate.driver.context.streaming_context",
         "sluicegate.driver.sql", "sluicegate.driver.rdd", "sluicegate.driver.dstream",
         "sluicegate.driver.cluster.service", "pyarrow", "duckdb"]


def _loaded_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_worker_command_imports_no_driver_api():
    loaded = _loaded_after(
        "import sluicegate.driver.cli as cli\n"
        "args = cli.build_parser().parse_args(['worker', '--cores', '1'])\n"
        "import sluicegate.driver.cli_services, sluicegate.worker.daemon")
    assert loaded == []


def test_the_driver_package_imports_a_name_on_first_use():
    assert _loaded_after("import sluicegate.driver") == []
    assert "sluicegate.driver.context.spark_context" in _loaded_after(
        "from sluicegate.driver import SparkContext")


def test_star_import_gives_every_public_name():
    import sluicegate.driver as driver

    namespace: dict = {}
    exec("from sluicegate.driver import *", namespace)
    assert all(namespace[name] is getattr(driver, name) for name in driver.__all__)
    assert set(driver.__all__) <= set(dir(driver))
