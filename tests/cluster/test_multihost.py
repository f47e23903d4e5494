"""A cluster spanning three "hosts": network namespaces on one machine.

The driver and two workers each live in a network namespace of their own
(10.200.0.1, .2, .3 on a bridge, itself in a fourth namespace so the host's
firewall never sees the traffic). Nothing can use loopback between them, so
the run proves the addresses (``--host``/``--advertise-host``), the explicit
secret (``--secret-file``) and executor-to-executor shuffle fetches work
across hosts. Needs root and iproute2; skipped otherwise.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import pytest

from cluster_harness import LocalCluster
from sluicegate.common.auth import new_secret

SUBNET = "10.200.0"

# Each task reports the network namespace it ran in, and the job shuffles.
JOB = """
    import os, time
    from operator import add
    from sluicegate.driver import SparkContext
    sc = SparkContext(appName="multihost")

    def where(_):
        time.sleep(0.1)
        yield os.stat("/proc/self/ns/net").st_ino

    print("NETNS", *sorted(set(sc.parallelize(range(16), 16).mapPartitions(where).collect())))
    counts = sc.parallelize(range(10000), 8).map(lambda x: (x % 7, 1)).reduceByKey(add, 4)
    print("COUNTS", sorted(counts.collect()))
    sc.stop()
"""


def _ip(*args: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, timeout=30)


class Namespaces:
    """A bridge namespace and one namespace per host, each with an address on the bridge."""

    def __init__(self, hosts: list[str]):
        tag = f"{os.getpid() % 100000}"
        self.switch = f"sgsw{tag}"
        self.names = {host: f"sg{host}{tag}" for host in hosts}
        self.addresses = {host: f"{SUBNET}.{i}" for i, host in enumerate(hosts, start=1)}
        self.created: list[str] = []

    def create(self) -> None:
        _ip("netns", "add", self.switch)
        self.created.append(self.switch)
        _ip("link", "add", "br0", "type", "bridge", namespace=self.switch)
        _ip("link", "set", "br0", "up", namespace=self.switch)
        for i, (host, name) in enumerate(self.names.items(), start=1):
            _ip("netns", "add", name)
            self.created.append(name)
            _ip("link", "set", "lo", "up", namespace=name)
            _ip("link", "add", "eth0", "type", "veth", "peer", "name", f"port{i}", namespace=name)
            _ip("link", "set", f"port{i}", "netns", self.switch, namespace=name)
            _ip("link", "set", f"port{i}", "master", "br0", namespace=self.switch)
            _ip("link", "set", f"port{i}", "up", namespace=self.switch)
            _ip("addr", "add", f"{self.addresses[host]}/24", "dev", "eth0", namespace=name)
            _ip("link", "set", "eth0", "up", namespace=name)

    def inode(self, host: str) -> int:
        return os.stat(f"/run/netns/{self.names[host]}").st_ino

    def delete(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.created.clear()


@pytest.fixture
def namespaces():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("network namespaces need iproute2 (apt-get install -y iproute2)")
    spaces = Namespaces(["drv", "wa", "wb"])
    try:
        spaces.create()
    except (subprocess.CalledProcessError, OSError) as exc:
        spaces.delete()
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot create network namespaces here: {exc} {detail.decode(errors='replace')}")
    yield spaces
    spaces.delete()


def test_driver_and_workers_on_separate_hosts(namespaces, tmp_path):
    secret = tmp_path / "cluster-secret"
    secret.write_bytes(new_secret())
    secret.chmod(0o600)
    ns = namespaces
    cluster = LocalCluster(tmp_path / "cluster", secret_file=secret, host=ns.addresses["drv"],
                           netns={"driver": ns.names["drv"], "wa": ns.names["wa"],
                                  "wb": ns.names["wb"]})
    try:
        cluster.start_driver(extra=["--advertise-host", ns.addresses["drv"]])
        for worker in ("wa", "wb"):
            cluster.start_worker(worker, cores=2, extra=["--host", ns.addresses[worker],
                                                         "--advertise-host", ns.addresses[worker]])
        hosts = {w["worker_id"]: w["host"] for w in cluster.status()["workers"] if w["alive"]}
        assert hosts == {"wa": ns.addresses["wa"], "wb": ns.addresses["wb"]}

        script = tmp_path / "job.py"
        script.write_text(textwrap.dedent(JOB))
        done = cluster.submit(script, timeout_s=120)
        assert done.returncode == 0, done.stderr
        lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
        expected = sorted((k, len(range(k, 10000, 7))) for k in range(7))
        assert lines["COUNTS"] == f"COUNTS {expected}"
        ran_in = {int(inode) for inode in lines["NETNS"].split()[1:]}
        assert ran_in == {ns.inode("wa"), ns.inode("wb")}, "tasks ran outside the worker hosts"

        job = cluster.jobs()[-1]
        assert job["state"] == "FINISHED"
        assert job["driver_endpoint"].startswith(f"tcp://{ns.addresses['drv']}:")
    finally:
        cluster.close()
