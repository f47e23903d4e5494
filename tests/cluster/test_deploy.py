"""The deployment files in ``deploy/`` are well formed and run what they claim.

systemd units parse (``systemd-analyze verify`` where there is one) and start
commands the CLI accepts; the compose file and Kubernetes manifests parse and
hold the expected objects and commands; the scripts pass ``bash -n``, and
``start-cluster.sh`` really starts a driver and the workers of a hosts file
(through an ``SSH`` stand-in that runs the command here) and
``stop-cluster.sh`` stops them.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from cluster_harness import SLUICEGATE, free_port, kill_tree, wait_until
from sluicegate.driver.cli import build_parser

yaml = pytest.importorskip("yaml", reason="pyyaml is in the `test` extra")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = {"driver": DEPLOY / "systemd" / "sluicegate-driver.service",
         "worker": DEPLOY / "systemd" / "sluicegate-worker.service"}
ENV_FILES = {"driver": DEPLOY / "systemd" / "driver.env",
             "worker": DEPLOY / "systemd" / "worker.env"}


def cli_accepts(argv: list[str]) -> None:
    """``argv`` (without the program) parses as a sluicegate invocation, and its
    subcommand's ``--help`` runs."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"`sluicegate {shlex.join(argv)}` does not parse") from exc
    assert args.command == argv[0]
    done = subprocess.run([SLUICEGATE, argv[0], "--help"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr


# -- systemd ---------------------------------------------------------------------------

def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and keys (a key may repeat), continuation lines joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    text = re.sub(r"\\\n", " ", path.read_text())
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: bad section header"
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: not key=value"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = " ".join(shlex.split(value))
    return env


def expand_exec(command: str, env: dict[str, str]) -> list[str]:
    """systemd's expansion: ``${VAR}`` is one word, a lone ``$VAR`` word splits."""
    words = []
    for word in shlex.split(command):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            words.extend(env.get(word[1:], "").split())
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                                lambda m: env.get(m.group(1), ""), word))
    return words


@pytest.mark.parametrize("role", ["driver", "worker"])
def test_systemd_unit_parses_and_starts_a_valid_command(role):
    unit = read_unit(UNITS[role])
    assert set(unit) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["EnvironmentFile"] == [f"/etc/sluicegate/{role}.env"]
    # The driver's jobs outlive a restart of it; a worker's executors never outlive it.
    assert service["KillMode"] == [{"driver": "process", "worker": "mixed"}[role]]
    assert service["User"] == ["sluicegate"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    (exec_start,) = service["ExecStart"]
    argv = expand_exec(exec_start, read_env_file(ENV_FILES[role]))
    assert argv[0] == "/opt/sluicegate/venv/bin/sluicegate"
    assert argv[1] == role
    assert argv[argv.index("--secret-file") + 1] == "/etc/sluicegate/secret"
    cli_accepts(argv[1:])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("role", ["driver", "worker"])
def test_systemd_analyze_verify(role, tmp_path):
    # verify insists the ExecStart program and the EnvironmentFile exist: point them here.
    text = UNITS[role].read_text()
    text = text.replace("/opt/sluicegate/venv/bin/sluicegate", SLUICEGATE)
    text = text.replace(f"/etc/sluicegate/{role}.env", str(ENV_FILES[role]))
    unit = tmp_path / UNITS[role].name
    unit.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
    assert not complaints, complaints


# -- docker -------------------------------------------------------------------------------

def test_dockerfile_installs_the_project():
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in text.splitlines()
                    if line.strip() and not line.startswith(("#", " "))]
    assert instructions[0] == "FROM" and "python:3" in text.splitlines()[
        [i for i, line in enumerate(text.splitlines()) if line.startswith("FROM")][0]]
    assert "-slim" in text
    assert re.search(r"^RUN pip install /src", text, re.M)
    assert re.search(r'^ENTRYPOINT \["sluicegate"\]', text, re.M)
    assert re.search(r"^USER sluicegate", text, re.M)
    for folder in ("common", "driver", "worker"):  # what setup.py maps into the package
        assert f"COPY {folder} /src/{folder}" in text


def container_engine() -> list[str] | None:
    """A container engine that can run here: podman, or docker with a reachable daemon."""
    if shutil.which("podman"):
        return ["podman"]
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return ["docker"]
    return None


def test_the_image_builds_and_its_cluster_answers(tmp_path):
    """Builds deploy/docker/Dockerfile for real and runs the driver service and a worker
    from it. Skips, saying why, where no engine is installed or the base image cannot be
    pulled (a machine without access to a container registry)."""
    engine = container_engine()
    if engine is None:
        pytest.skip("no container engine (podman, or docker with a running daemon)")
    base = next(line.split()[1] for line in (DEPLOY / "docker" / "Dockerfile").read_text()
                .splitlines() if line.startswith("FROM"))
    pulled = subprocess.run(engine + ["pull", base], capture_output=True, text=True, timeout=300)
    if pulled.returncode != 0:
        pytest.skip(f"cannot pull the base image {base}: {pulled.stderr.strip()[-300:]}")
    tag = "sluicegate-test:ci"
    root = DEPLOY.parent
    built = subprocess.run(engine + ["build", "-f", str(DEPLOY / "docker" / "Dockerfile"),
                                     "-t", tag, str(root)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    version = subprocess.run(engine + ["run", "--rm", tag, "--version"], capture_output=True,
                             text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("sluicegate "), version.stderr
    name = f"sluicegate-test-{os.getpid()}"
    try:
        subprocess.run(engine + ["run", "-d", "--name", name, "--network", "host", tag, "driver",
                                 "--port", str(free_port())], check=True, timeout=120,
                       capture_output=True)
        logs = wait_until(lambda: subprocess.run(
            engine + ["logs", name], capture_output=True, text=True, timeout=30).stderr
            or None, 60, what="the driver service's first log line")
        assert "Traceback" not in logs, logs
    finally:
        subprocess.run(engine + ["rm", "-f", name], capture_output=True, timeout=120)


def test_compose_runs_a_driver_and_two_workers_sharing_a_secret():
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"driver", "worker", "secret"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "secrets" in compose["volumes"]
    for name in ("driver", "worker"):
        service = services[name]
        assert service["image"].startswith("sluicegate:")
        assert "secrets:/secrets:ro" in service["volumes"]
        command = service["command"]
        assert command[command.index("--secret-file") + 1] == "/secrets/secret"
        cli_accepts(command)
    assert services["driver"]["command"][0] == "driver"
    assert services["worker"]["command"][:3] == ["worker", "--driver", "driver:7077"]
    assert services["worker"]["depends_on"]["driver"]["condition"] == "service_healthy"
    assert services["driver"]["healthcheck"]["test"][1:3] == ["sluicegate", "status"]
    # The secret maker writes a mode-600 file: run its Python here.
    maker = services["secret"]["command"][0].replace("/secrets/secret", "{path}")
    assert "0o600" in maker and "O_EXCL" in maker


def test_compose_secret_maker_makes_a_private_secret(tmp_path):
    maker = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())["services"]["secret"]
    path = tmp_path / "secret"
    code = maker["command"][0].replace("/secrets/secret", str(path))
    for _ in range(2):  # the second run keeps the first secret
        subprocess.run(["python3", "-c", code], check=True, timeout=30)
    assert path.stat().st_mode & 0o777 == 0o600
    from sluicegate.common.auth import read_secret_file
    assert len(read_secret_file(path)) >= 32


# -- kubernetes -------------------------------------------------------------------------------

def k8s_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def test_k8s_manifests():
    objects = k8s_objects()
    assert set(objects) == {("Deployment", "sluicegate-driver"), ("Service", "sluicegate-driver"),
                            ("Deployment", "sluicegate-worker")}
    driver = objects[("Deployment", "sluicegate-driver")]
    worker = objects[("Deployment", "sluicegate-worker")]
    service = objects[("Service", "sluicegate-driver")]
    assert driver["spec"]["replicas"] == 1
    assert worker["spec"]["replicas"] >= 2  # `kubectl scale deployment/sluicegate-worker`
    assert service["spec"]["ports"][0]["port"] == 7077
    assert service["spec"]["selector"] == driver["spec"]["template"]["metadata"]["labels"]
    for deployment in (driver, worker):
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
        pod = spec["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["secret-source"]["secret"]["secretName"] == "sluicegate-secret"
        (container,) = pod["containers"]
        args = [a.replace("$(POD_IP)", "10.1.2.3") for a in container["args"]]
        secret_path = args[args.index("--secret-file") + 1]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[str(Path(secret_path).parent)] == "secret"
        # the init container copies the Secret's root-owned file to mode 600 for the user
        (init,) = pod["initContainers"]
        assert init["command"][:3] == ["install", "-m", "600"]
        assert init["command"][-1] == secret_path
        assert container["securityContext"]["runAsNonRoot"] is True
        cli_accepts(args)
    assert driver["spec"]["template"]["spec"]["containers"][0]["args"][0] == "driver"
    worker_args = worker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert worker_args[worker_args.index("--driver") + 1] == "sluicegate-driver:7077"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl here")
def test_kustomization_renders():
    done = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(done.stdout) if d)
    assert kinds == ["Deployment", "Deployment", "Service"]


# -- start-cluster.sh / stop-cluster.sh ------------------------------------------------------------

@pytest.mark.parametrize("script", ["start-cluster.sh", "stop-cluster.sh"])
def test_scripts_pass_bash_n(script):
    path = DEPLOY / script
    assert os.access(path, os.X_OK)
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


FAKE_SSH = """#!/usr/bin/env bash
# ssh stand-in: records the call, drops the options, and runs the command here as if on the
# named host (its --host becomes loopback). A host called deadhost is unreachable.
echo "$*" >> "$FAKE_SSH_LOG"
while [[ $# -gt 0 && "$1" == -* ]]; do if [[ "$1" == -o ]]; then shift 2; else shift; fi; done
host="$1"; shift
if [[ "$host" == deadhost ]]; then echo "ssh: connect to host deadhost: refused" >&2; exit 255; fi
command="$*"
exec bash -c "${command//--host $host /--host 127.0.0.1 }"
"""


def cluster_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text(FAKE_SSH)
    fake_ssh.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICEGATE_", "PYTEST_"))}
    env.update({"SLUICEGATE_HOME": str(tmp_path / "home"), "SSH": str(fake_ssh),
                "FAKE_SSH_LOG": str(tmp_path / "ssh.log"),
                "SLUICEGATE_RUN_DIR": str(tmp_path / "run"),
                "SLUICEGATE_DRIVER_PORT": str(free_port()), "SLUICEGATE_BIN": SLUICEGATE,
                "SLUICEGATE_WORKER_OPTS": "--cores 1", **extra})
    return env


def ssh_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "ssh.log"
    return log.read_text().splitlines() if log.exists() else []


def started_processes(run_dir: Path) -> list[psutil.Process]:
    found = []
    for pid_file in run_dir.glob("*.pid"):
        try:
            proc = psutil.Process(int(pid_file.read_text()))
            found += [proc, *proc.children(recursive=True)]
        except (OSError, ValueError, psutil.NoSuchProcess):
            pass
    return found


def alive_workers(env: dict[str, str]) -> list[str]:
    status = subprocess.run([SLUICEGATE, "status", "--json", "--driver",
                             f"127.0.0.1:{env['SLUICEGATE_DRIVER_PORT']}"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stderr
    return sorted(w["worker_id"] for w in json.loads(status.stdout)["workers"] if w["alive"])


@pytest.mark.parametrize("hosts, over_ssh", [
    (["localhost", "127.0.0.1"], []),          # this machine: started directly, no ssh
    (["localhost", "sshhost"], ["sshhost"]),   # another host: over ssh
])
def test_start_and_stop_cluster(tmp_path, hosts, over_ssh):
    env = cluster_env(tmp_path)
    hosts_file = tmp_path / "workers"
    hosts_file.write_text("# the workers\n" + "\n\n".join(f"{h}   # one" for h in hosts) + "\n")
    run_dir = tmp_path / "run"
    procs: list[psutil.Process] = []
    try:
        done = subprocess.run([str(DEPLOY / "start-cluster.sh"), str(hosts_file)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        calls = ssh_calls(tmp_path)
        assert len(calls) == len(over_ssh)
        assert all(any(f" {h} " in call for h in over_ssh) for call in calls)
        expected = sorted(f"{h}-{i}" for i, h in enumerate(hosts, 1))
        assert wait_until(lambda: alive_workers(env) == expected or None, 30,
                          what="both workers")
        procs = started_processes(run_dir)
        assert len({p.pid for p in procs if "worker" in " ".join(p.cmdline())
                    and "executor" not in " ".join(p.cmdline())}) == 2

        stopped = subprocess.run([str(DEPLOY / "stop-cluster.sh")], env=env, capture_output=True,
                                 text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        _, alive = psutil.wait_procs(procs, timeout=30)
        assert not alive
        assert not list(run_dir.glob("*.pid"))
    finally:
        kill_tree(procs or started_processes(run_dir), grace_s=3)


@pytest.mark.parametrize("hosts, options, why", [
    (["localhost", "deadhost"], "--cores 1", "could not start a worker on deadhost"),
    (["localhost"], "--cores 1 --memory nonsense", "only 0 of 1 workers registered"),
])
def test_a_failed_start_stops_everything_it_started(tmp_path, hosts, options, why):
    env = cluster_env(tmp_path, SLUICEGATE_WORKER_OPTS=options, SLUICEGATE_START_WAIT_STEPS="20")
    hosts_file = tmp_path / "workers"
    hosts_file.write_text("\n".join(hosts) + "\n")
    run_dir = tmp_path / "run"
    seen: list[psutil.Process] = []
    try:
        proc = subprocess.Popen([str(DEPLOY / "start-cluster.sh"), str(hosts_file)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Remember what it starts, to check that all of it is gone afterwards.
        while proc.poll() is None:
            seen += [p for p in started_processes(run_dir) if p not in seen]
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        out, err = proc.communicate(timeout=60)
        assert proc.returncode != 0, out + err
        assert why in err
        assert "stopping what was started" in err
        assert seen, "the driver was never seen running"
        _, alive = psutil.wait_procs(seen, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
        assert not list(run_dir.glob("*.pid"))
    finally:
        kill_tree(seen + started_processes(run_dir), grace_s=3)
