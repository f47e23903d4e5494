"""The command line's answers to bad input and absent peers (issue 16, item 3).

Each message is quoted here as the user sees it, before -> after:

* ``--driver 127.0.0.1`` / ``host:notaport`` / ``nonsense``: a ZMQError traceback
  (``zmq.error.ZMQError: Invalid argument (addr='tcp://127.0.0.1')``) ->
  ``sluicegate jobs: --driver '127.0.0.1' is not HOST:PORT (e.g. 127.0.0.1:7077)``,
  ``... --driver 'host:notaport': the port 'notaport' is not a number from 1 to 65535``.
* a host name that does not resolve: ``no answer from the driver service at
  nosuchhost.invalid:7077 within 10s (...)`` after 10 s -> at once ``--driver
  'nosuchhost.invalid:7077': the host name 'nosuchhost.invalid' does not resolve (...)``.
* nothing listening: the same 10 s wait -> ``cannot reach the driver service at
  127.0.0.1:P: tried 127.0.0.1:P: connection refused (...)`` at once; a port that
  accepts connections but never speaks: ``no sluicegate driver answered at ...: tried
  tcp://...`` within about 2 s.
* a worker pointed at a dead driver: ``lost the driver service at tcp://...`` after 10 s
  -> ``waiting for the driver at 127.0.0.1:P (connection refused); retrying`` from the
  first second, and never "lost".
* ``sluicegate --version``: a usage error -> ``sluicegate 0.1.0``.
* ``jobs --json`` into a closed pipe: a BrokenPipeError traceback -> nothing, status 141.
* a worker stopped with SIGTERM: nothing on its side and ``lost`` in ``status`` ->
  ``received SIGTERM: leaving the driver service at ...`` and ``stopped``; lost and
  stopped workers leave ``status`` after ``--worker-retention``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import time
from importlib.metadata import version

import pytest

from cluster_harness import SLUICEGATE, LocalCluster, wait_until
from sluicegate.driver.cli import build_parser

MALFORMED = {
    "127.0.0.1": "--driver '127.0.0.1' is not HOST:PORT (e.g. 127.0.0.1:7077)",
    "host:notaport": "--driver 'host:notaport': the port 'notaport' is not a number from 1 to 65535",
    "nonsense": "--driver 'nonsense' is not HOST:PORT (e.g. 127.0.0.1:7077)",
}


@pytest.fixture
def home(tmp_path):
    """An environment with its own SLUICEGATE_HOME and a secret file."""
    secret = tmp_path / "secret"
    secret.write_text("a-test-secret-of-enough-length-for-sure\n")
    secret.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICEGATE_", "PYTEST_"))}
    env.update({"SLUICEGATE_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"})
    return env, secret


def run(env, *args, timeout_s: float = 60.0) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([SLUICEGATE, *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s, stdin=subprocess.DEVNULL)
    return done, time.monotonic() - started


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "Error:" not in text, text
    return lines[0]


@pytest.fixture
def startup_s(home):
    """How long the command line takes to start and answer at all (the machine's pace)."""
    env, _ = home
    _, took = run(env, "--version")
    return took


# -- --driver ------------------------------------------------------------------------------

@pytest.mark.parametrize("address", sorted(MALFORMED))
@pytest.mark.parametrize("command", ["jobs", "status", "kill", "logs", "submit", "worker"])
def test_a_malformed_driver_address_is_one_line(home, tmp_path, address, command):
    env, secret = home
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")
    positional = {"kill": ["job-0001"], "logs": ["job-0001"], "submit": [str(script)]}
    done, _ = run(env, command, "--driver", address, "--secret-file", str(secret),
                  *positional.get(command, []))
    assert done.returncode == 2
    assert one_line(done.stderr) == f"sluicegate {command}: {MALFORMED[address]}"
    assert done.stdout == ""


def test_a_host_name_that_does_not_resolve_is_said_at_once(home, startup_s):
    env, secret = home
    done, took = run(env, "jobs", "--driver", "nosuchhost.invalid:7077", "--secret-file",
                     str(secret))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith("sluicegate jobs: --driver 'nosuchhost.invalid:7077': the host name "
                           "'nosuchhost.invalid' does not resolve ("), line
    assert took < startup_s + 5  # (it used to wait 10 s for an answer)


def test_nothing_listening_is_reported_at_once_with_what_was_tried(home, startup_s):
    env, secret = home
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        done, took = run(env, "status", "--driver", f"127.0.0.1:{port}", "--secret-file",
                         str(secret))
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"sluicegate status: cannot reach the driver service at 127.0.0.1:{port}: tried "
        f"127.0.0.1:{port}: connection refused (is `sluicegate driver` running there, and is "
        "the port open?)")
    assert took < startup_s + 3


def test_a_port_that_accepts_but_never_answers_is_reported_within_seconds(home, startup_s):
    env, secret = home
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, says nothing
        port = silent.getsockname()[1]
        done, took = run(env, "jobs", "--driver", f"127.0.0.1:{port}", "--secret-file",
                         str(secret))
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"sluicegate jobs: no sluicegate driver answered at 127.0.0.1:{port}: tried "
        f"tcp://127.0.0.1:{port}, which accepted the connection but completed no handshake "
        "within 2.0s (another program on that port, or a firewall that accepts every "
        "connection?)")
    assert took < startup_s + 3 + 2  # the 2 s handshake wait, with room for a slow machine


def test_a_worker_pointed_at_a_dead_driver_says_it_waits_from_the_first_second(home, tmp_path):
    env, secret = home
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen([SLUICEGATE, "worker", "--driver", f"127.0.0.1:{port}",
                                       "--secret-file", str(secret), "--cores", "1",
                                       "--work-dir", str(tmp_path / "work")],
                                      env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            started = time.monotonic()
            expected = f"waiting for the driver at 127.0.0.1:{port} (connection refused); retrying"
            wait_until(lambda: expected in log.read_text(), 30, what="the waiting line")
            said_after = time.monotonic() - started
            # Past the 10 s in which it used to declare the driver "lost".
            time.sleep(max(0.0, 13 - (time.monotonic() - started)))
            text = log.read_text()
            assert worker.poll() is None, text
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    assert "lost" not in text, text
    assert "still waiting for the driver at" in text, text
    _, startup = run(env, "--version")
    assert said_after < startup + 3, (said_after, text)


# -- --version and --help ------------------------------------------------------------------

def test_version(home):
    env, _ = home
    done, _ = run(env, "--version")
    assert done.returncode == 0
    assert done.stdout == f"sluicegate {version('sluicegate')}\n"


def _parsers(parser: argparse.ArgumentParser):
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for parser_ in action.choices.values():
                yield from _parsers(parser_)


def test_every_option_and_argument_has_help_that_names_its_default():
    seen = 0
    for prog, parser in _parsers(build_parser()):
        rendered = " ".join(parser.format_help().split())
        for action in parser._actions:
            seen += 1
            where = f"{prog} {action.option_strings or action.dest}"
            assert action.help and action.help is not argparse.SUPPRESS, f"{where}: no help"
            flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                       argparse._HelpAction, argparse._VersionAction))
            if action.default is not None and not flag:
                assert f"(default: {action.default})" in rendered, \
                    f"{where}: its help does not say its default {action.default!r}"
    assert seen > 50  # (every command was walked)


# -- against a running service --------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path / "cluster")
    c.start_driver(extra=["--ui-port", "-1", "--worker-retention", "3s"])
    yield c
    c.close()


def test_jobs_json_into_a_closed_pipe_ends_quietly(cluster):
    proc = subprocess.Popen([SLUICEGATE, "jobs", "--json", "--driver", cluster.address],
                            env=cluster.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first byte (as `| head -c0` would be)
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 128 + signal.SIGPIPE
    assert err == ""
    # ... and a real `head`, which reads its line and goes away.
    done = subprocess.run(f"{SLUICEGATE} jobs --json --driver {cluster.address} | head -n 1",
                          shell=True, env=cluster.env, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("[") and done.stdout.count("\n") == 1 and done.stderr == ""


def worker_states(cluster: LocalCluster) -> dict[str, str]:
    return {w["worker_id"]: w["state"] for w in cluster.status()["workers"]}


def test_a_worker_stopped_with_sigterm_says_so_and_shows_as_stopped_then_goes(cluster):
    stopped = cluster.start_worker("calm", cores=1)
    killed = cluster.start_worker("crashed", cores=1)
    assert worker_states(cluster) == {"calm": "alive", "crashed": "alive"}
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(30) == 0
    assert (f"received SIGTERM: leaving the driver service at {cluster.address}"
            in cluster.log_text("calm.log")), cluster.log_text("calm.log")
    assert worker_states(cluster)["calm"] == "stopped"
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    wait_until(lambda: worker_states(cluster).get("crashed") == "lost", 30, what="lost")
    text = cluster.cli("status")
    assert text.returncode == 0, text.stderr
    rows = {line.split()[0]: line.split()[-1] for line in text.stdout.splitlines()[2:]
            if line.split() and line.split()[0] in ("calm", "crashed")}
    assert rows.get("crashed") == "lost" and rows.get("calm", "stopped") == "stopped", text.stdout
    assert "worker calm stopped: received SIGTERM" in cluster.log_text("driver.log")
    # --worker-retention 3s: both leave the listing (and `status --json`) after that.
    wait_until(lambda: worker_states(cluster) == {}, 30, what="gone workers to leave `status`")
    assert json.loads(cluster.cli("status", "--json").stdout)["workers"] == []
