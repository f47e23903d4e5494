"""The streaming examples (stateful, recoverable, queue, join with a static RDD), run
as users run them: as scripts, in local mode, each with its own executors."""
from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

import psutil
import pytest

from example_runs import EXAMPLES, OneShotServer, ScriptRun, drop_file, pprint_blocks


def end(run: ScriptRun) -> None:
    """SIGTERM the example; it and its executors must go."""
    code = run.finish(30, terminate=True)
    assert code in (0, -signal.SIGTERM), "".join(run.errors)[-3000:]
    alive = run.leftover_executors()
    assert not alive, f"executors outlived the example's driver: {[p.pid for p in alive]}"


def test_stateful_wordcount_example(tmp_path):
    server = OneShotServer(b"apple banana apple\n" * 3 + b"cherry\n")
    run = ScriptRun(str(EXAMPLES / "stateful_wordcount.py"), "127.0.0.1", str(server.port),
                    str(tmp_path / "checkpoints"))
    expected = sorted(["('apple', 6)", "('banana', 3)", "('cherry', 1)", "('hello', 1)",
                       "('world', 1)"])
    try:
        assert run.wait_for(lambda text: any(sorted(b) == expected for b in pprint_blocks(text)),
                            90), run.text + "".join(run.errors)[-3000:]
        printed = len(pprint_blocks(run.text))
        # later batches bring nothing new: the running counts stay as they are
        assert run.wait_for(lambda text: len(pprint_blocks(text)) >= printed + 2, 30)
        assert sorted(pprint_blocks(run.text)[-1]) == expected
        assert run.proc.poll() is None and run.executors
        # sc.setCheckpointDir alone: state checkpoints, no metadata checkpoints
        assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))
    finally:
        server.close()
        end(run)


def saved_totals(out: Path) -> dict | None:
    done = sorted((d for d in out.glob("counts-*") if (d / "_SUCCESS").exists()),
                  key=lambda d: int(d.name.split("-")[1]))
    if not done:
        return None
    pairs = [line.split("\t") for part in sorted(done[-1].glob("part-*"))
             for line in part.read_text().splitlines() if line]
    return {word: int(count) for word, count in pairs}


@pytest.mark.slow
def test_recoverable_wordcount_example_recovers_after_sigkill(tmp_path):
    inbox, checkpoint, out = tmp_path / "in", tmp_path / "checkpoint", tmp_path / "out"
    inbox.mkdir()
    args = (str(EXAMPLES / "recoverable_wordcount.py"), str(inbox), str(checkpoint), str(out))
    fed: Counter = Counter()

    run = ScriptRun(*args)
    try:
        assert run.wait_for(lambda text: "Totals at" in text, 90), "".join(run.errors)[-3000:]
        assert "Creating new context" in run.text
        for i in range(3):
            words = f"apple banana w{i} apple".split()
            drop_file(inbox, f"first-{i}.txt", " ".join(words) + "\n")
            fed.update(words)
        assert run.wait_for(lambda _: saved_totals(out) == dict(fed), 60), saved_totals(out)
        victims = run.executors or []
        run.proc.kill()  # SIGKILL: no cleanup at all
    finally:
        code = run.finish(30, terminate=False)
    assert code == -signal.SIGKILL
    _, alive = psutil.wait_procs(victims, timeout=30)
    assert not alive, "executors outlived the killed driver"

    for i in range(2):  # arrive while the driver is down
        words = f"cherry apple d{i}".split()
        drop_file(inbox, f"down-{i}.txt", " ".join(words) + "\n")
        fed.update(words)
    again = ScriptRun(*args)
    try:
        assert again.wait_for(lambda _: saved_totals(out) == dict(fed), 90), \
            (saved_totals(out), dict(fed), "".join(again.errors)[-3000:])
        drop_file(inbox, "after.txt", "banana\n")
        fed.update(["banana"])
        assert again.wait_for(lambda _: saved_totals(out) == dict(fed), 60), saved_totals(out)
        assert "Creating new context" not in again.text
        assert "recovering streaming context" in "".join(again.errors)
    finally:
        end(again)
    # every saved batch is whole, and totals never went back
    previous: dict = {}
    for directory in sorted(out.glob("counts-*"), key=lambda d: int(d.name.split("-")[1])):
        assert (directory / "_SUCCESS").exists(), directory.name
        totals = {w: int(c) for part in directory.glob("part-*")
                  for w, c in (line.split("\t") for line in part.read_text().splitlines() if line)}
        assert all(totals.get(w, 0) >= c for w, c in previous.items()), directory.name
        previous = totals
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "staging left behind"


COUNT_LINE = re.compile(r"^(batch|window) count: (\d+)$", re.M)


def test_queue_stream_example():
    run = ScriptRun(str(EXAMPLES / "queue_stream.py"))
    try:
        code = run.finish(120, terminate=False)  # it stops itself, gracefully
    finally:
        alive = run.leftover_executors()
    assert code == 0, "".join(run.errors)[-3000:]
    assert not alive
    text = run.text
    batches = [int(n) for kind, n in COUNT_LINE.findall(text) if kind == "batch"]
    windows = [int(n) for kind, n in COUNT_LINE.findall(text) if kind == "window"]
    assert batches[:5] == [1000] * 5, text
    assert len(batches) >= 6 and set(batches[5:]) == {0}, batches  # an exhausted queue: 0
    assert windows == [sum(batches[max(0, i - 2):i + 1]) for i in range(len(batches))]
    digits = [b for b in pprint_blocks(text) if b and b[0].startswith("(")]
    assert len(digits) == 5
    assert all(sorted(b) == sorted(f"({d}, 100)" for d in range(10)) for b in digits)


def test_join_static_example(tmp_path):
    sentiments = tmp_path / "sentiments.txt"
    sentiments.write_text("happy 3\ngood 2\nsad -2\nbad -3\n")
    server = OneShotServer(b"happy happy sad good day unknown\n")
    run = ScriptRun(str(EXAMPLES / "join_static.py"), "127.0.0.1", str(server.port),
                    str(sentiments))
    try:
        assert run.wait_for(lambda text: "(3 scored)" in text and "  sad: -2\n" in text, 90), \
            run.text + "".join(run.errors)[-3000:]
        block = run.text.split("(3 scored):\n")[1].split("\n")[:3]
        assert block == ["  happy: 6", "  good: 2", "  sad: -2"]
        assert "Happiest words at" in run.text
    finally:
        server.close()
        end(run)
