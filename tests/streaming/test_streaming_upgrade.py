"""Code upgrades that keep state, with real processes.

Three versions of a word count (``tests/jobs/upgrade_wordcount_v*.py``) are deployed
one after another on the same checkpoint directory:

* v1 counts the words of new files with updateStateByKey and is stopped (SIGTERM,
  graceful);
* v2 lower-cases the words and changes the output. Started as a plain restart it is
  refused (its code changed); started with ``getOrCreate(..., upgrade=True)`` it goes
  on from v1's counts, reads no file twice, and applies its function to new data only;
  a later plain restart recovers v2 without calling its setup function;
* v3 adds a second stateful operator: its upgrade (asked for with the setting
  ``spark.sluicegate.streaming.upgrade=true``) is refused, naming that stream.

A refused start leaves the checkpoint as it was. And an upgrade takes over the
pending batches and a receiver's positions too: test_recovery's job, killed in the
middle of a batch and restarted as an upgrade, saves exactly what a run never
killed saves.
"""
from __future__ import annotations

import ast
import os
import re
import signal
from pathlib import Path

import pytest

from recovery_scenarios import AFTER_STEPS, BATCH_MS, JOBS, REPLAYED, STEPS, JobRun, Scenario

V1, V2, V3 = (JOBS / f"upgrade_wordcount_v{n}.py" for n in (1, 2, 3))
STATE = re.compile(r"^(V\d) STATE (\[.*\])$", re.M)
GRACEFUL = {"SLUICEGATE_CONF_spark_streaming_stopGracefullyOnShutdown": "true"}
UPGRADE_SETTING = {"SLUICEGATE_CONF_spark_sluicegate_streaming_upgrade": "true"}


def states(run: JobRun, version: str) -> list[list]:
    return [ast.literal_eval(text) for v, text in STATE.findall(run.output()) if v == version]


def drop_file(scenario: Scenario, name: str, text: str) -> None:
    hidden = scenario.inbox / f".{name}.tmp"
    hidden.write_text(text)
    os.rename(hidden, scenario.inbox / name)


def start(scenario: Scenario, script: Path, env: dict | None = None) -> JobRun:
    run = scenario.start(script, {**GRACEFUL, **(env or {})})
    run.wait_for(lambda: "STREAMING STARTED" in run.output(), 90, f"{script.name} to start")
    return run


def wait_state(run: JobRun, version: str, expected: list, timeout_s: float = 60) -> None:
    run.wait_for(lambda: expected in states(run, version), timeout_s,
                 f"{version} to print the state {expected}", 0.1)


def stop(run: JobRun) -> None:
    """SIGTERM: a graceful stop; the job ends by itself, with status 0."""
    run.signal_and_wait(signal.SIGTERM)
    assert run.proc.returncode == 0, run.output()[-3000:]


def checkpoint_files(scenario: Scenario) -> dict:
    return {p: p.read_bytes() for p in scenario.checkpoint.rglob("*") if p.is_file()}


def refused(scenario: Scenario, script: Path, env: dict | None = None) -> str:
    """Start ``script``; it must exit with an error and change nothing in the checkpoint."""
    before = checkpoint_files(scenario)
    run = scenario.start(script, {**GRACEFUL, **(env or {})})
    assert run.proc.wait(90) != 0, run.output()[-3000:]
    output = run.output()
    run.signal_and_wait(signal.SIGKILL)  # its executors, if it started any, are gone too
    assert checkpoint_files(scenario) == before
    assert "STREAMING STARTED" not in output
    return output


@pytest.mark.slow
def test_an_upgrade_keeps_the_state_and_a_changed_graph_is_refused(scenario):
    v1_state = [("Apple", 1), ("Banana", 1), ("apple", 1), ("banana", 1)]
    run = start(scenario, V1)
    assert "SETUP CALLED" in run.output()
    drop_file(scenario, "a.txt", "Apple apple Banana\nbanana\n")
    wait_state(run, "V1", v1_state)
    stop(run)
    drop_file(scenario, "b.txt", "APPLE Cherry\n")  # arrives while no version runs

    # v2 as a plain restart: its code changed, so the checkpoint is refused, setup unrun.
    output = refused(scenario, V2)
    assert "was written by a different version of this application" in output
    assert "getOrCreate(path, setup, upgrade=True)" in output
    assert "SETUP CALLED" not in output

    # v3 as an upgrade (asked for by the setting): a second stateful operator is refused.
    output = refused(scenario, V3, UPGRADE_SETTING)
    assert "SETUP CALLED" in output  # an upgrade builds the new graph to compare it
    assert "CheckpointError" in output
    assert "an upgrade cannot carry its state over" in output
    assert ("the new graph adds stream #7 updateStateByKey(numPartitions=default, "
            "initialRDD=False) sliding every 0.5s fed by #0 textFileStream, which has no state "
            "in the checkpoint") in output, output[-3000:]

    # v2 as an upgrade: v1's counts go on; only the new file is read, lower-cased.
    v2_state = [("Apple", 1), ("Banana", 1), ("apple", 2), ("banana", 1), ("cherry", 1)]
    run = start(scenario, V2, {"WORDCOUNT_UPGRADE": "1"})
    wait_state(run, "V2", v2_state)
    output = run.output()
    assert "SETUP CALLED" in output and "upgrading: the new application takes over" in output
    printed = states(run, "V2")
    assert printed[0] == v1_state, "the first batch after the upgrade must hold v1's counts"
    assert all(state in (v1_state, v2_state) for state in printed), printed
    saved = sorted(p for p in scenario.out.glob("counts-*") if (p / "_SUCCESS").exists())
    assert saved, "v2's new output (saveAsTextFiles) wrote nothing"
    lines = sorted(line for part in saved[-1].glob("part-*") for line in part.read_text().split("\n")
                   if line)
    assert lines == sorted(f"{word}\t{count}" for word, count in v2_state)
    stop(run)
    # (checked once v2 has stopped: while it runs, a batch's save may be under way)
    assert not list(scenario.out.glob(".*")), "staging directories left behind"

    # v2 restarted plainly: recovered (its own checkpoint now), setup not called.
    run = start(scenario, V2)
    wait_state(run, "V2", v2_state)
    drop_file(scenario, "c.txt", "cherry\n")
    wait_state(run, "V2", [("Apple", 1), ("Banana", 1), ("apple", 2), ("banana", 1),
                           ("cherry", 2)])
    output = run.output()
    assert "SETUP CALLED" not in output
    assert "recovering streaming context" in output
    stop(run)


@pytest.mark.slow
def test_an_upgrade_takes_over_pending_batches_and_the_write_ahead_log(clocked, baseline):
    """test_recovery's job (files and a reliable receiver with the WAL, clocked by a
    file) is SIGKILLed while batch 6 is half saved, with blocks in the WAL that no batch
    claimed. Restarted as an upgrade (setup called, its graph compared, the state,
    pending batch, file positions and blocks taken over), it saves the batch directories
    of the run never killed, line for line."""
    scenario, kill = clocked, AFTER_STEPS[0]
    run = scenario.start()
    for k in range(1, kill):
        scenario.step(k, run)
    scenario.hold.touch()  # batch 6's save waits half done
    scenario.feed_before(kill, run)
    scenario.set_clock(kill * BATCH_MS)
    holding = Path(f"{scenario.hold}.holding")
    run.wait_for(lambda: holding.exists(), 60, "batch 6 to be half saved")
    scenario.feed_after(kill, run)
    run.signal_and_wait(signal.SIGKILL)
    scenario.hold.unlink()
    assert not scenario.batch_done(kill).exists()
    scenario.feed_down(kill)

    again = scenario.start(env=UPGRADE_SETTING)
    again.wait_for(scenario.batch_done(kill).exists, 60, "the pending batch 6 to be re-run")
    output = again.output()
    assert "upgrading: the new application takes over" in output
    assert "recovering streaming context" not in output
    replayed = [int(n) for n in REPLAYED.findall(output)]
    assert replayed and replayed[0] > 0, "no block came back from the write-ahead log"
    scenario.wait_stored(again)
    for k in range(kill + 1, STEPS + 1):
        scenario.step(k, again)
    scenario.check_saved(baseline)
    scenario.check_outputs()
    assert scenario.newest_state() == dict(scenario.fed)
    again.signal_and_wait(signal.SIGTERM)
