"""Smoke tests of the shipped examples, run as users run them: as scripts."""
from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import psutil

from conftest import executor_processes
from example_runs import EXAMPLES, TUPLE_LINE, ScriptRun, pprinted_counts, script_env


def test_network_wordcount_example():
    payload = b"apple banana apple\n" * 3 + b"cherry\n"
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    connections: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(payload)
            connections.append(conn)  # held open: the job reads a live stream

    server_thread = threading.Thread(target=serve, name="test-example-server", daemon=True)
    server_thread.start()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "network_wordcount.py"), "127.0.0.1",
         str(server.getsockname()[1])],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=script_env(), text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")),
                              name="test-example-reader", daemon=True)
    reader.start()
    executors: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if pprinted_counts("".join(output)) == Counter(apple=6, banana=3, cherry=1):
                break
            time.sleep(0.1)
        time.sleep(1.0)  # a batch or so more: nothing may be counted twice
        executors = executor_processes(proc.pid)
        assert proc.poll() is None, "the example exited early"
        text = "".join(output)
        assert "Time: " in text and "-------------------------------------------" in text
        assert pprinted_counts(text) == Counter(apple=6, banana=3, cherry=1), text
        assert executors, "the example runs its executors as child processes"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        stop.set()
        server_thread.join(5)
        for conn in connections:
            conn.close()
        server.close()
        reader.join(5)
        proc.stdout.close()
    # the driver died on SIGTERM: its executors notice and exit by themselves
    gone, alive = psutil.wait_procs(executors, timeout=10)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"executors outlived the example's driver: {[p.pid for p in alive]}"


def test_wordcount_demo_example():
    result = subprocess.run([sys.executable, str(EXAMPLES / "wordcount_demo.py")],
                            capture_output=True, text=True, env=script_env(), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    blocks = [b for b in result.stdout.split("-------------------------------------------\nTime: ")
              if b.strip()]
    assert len(blocks) >= 3, result.stdout
    counted = 0
    for block in blocks:
        counts = [ast.literal_eval(line) for line in block.splitlines() if TUPLE_LINE.match(line)]
        assert len(counts) <= 5
        assert [c for _, c in counts] == sorted((c for _, c in counts), reverse=True)
        counted += sum(c for _, c in counts)
    assert counted > 0
    assert pprinted_counts(result.stdout)["the"] > 0


def pprint_times(text: str) -> int:
    return text.count("-------------------------------------------\nTime: ")


def test_file_wordcount_example(tmp_path):
    watched = tmp_path / "in"
    watched.mkdir()
    (watched / "before.txt").write_text("ignored ignored\n")  # present at start: not read
    run = ScriptRun(str(EXAMPLES / "file_wordcount.py"), str(watched))
    try:
        # a first batch printed: the stream is running and watches the directory
        assert run.wait_for(lambda text: pprint_times(text) >= 1, 90), \
            "".join(run.errors)[-3000:]
        hidden = watched / ".words.txt.tmp"  # written whole, then moved in
        hidden.write_text("apple banana apple\ncherry apple\n")
        os.rename(hidden, watched / "words.txt")
        expected = Counter(apple=3, banana=1, cherry=1)
        assert run.wait_for(lambda text: pprinted_counts(text) == expected, 60), run.text
        printed = pprint_times(run.text)
        # two batches more: the file is not read twice
        assert run.wait_for(lambda text: pprint_times(text) >= printed + 2, 30), run.text
        assert run.proc.poll() is None, "the example exited early"
        assert run.executors, "the example runs its executors as child processes"
        assert pprinted_counts(run.text) == expected, run.text
    finally:
        code = run.finish(15, terminate=True)
    assert code == -signal.SIGTERM  # a plain streaming job: SIGTERM ends it
    alive = run.leftover_executors()
    assert not alive, f"executors outlived the example's driver: {[p.pid for p in alive]}"


INT_PAIR_LINE = re.compile(r"^\((\d+), (\d+)\)$")


def test_custom_receiver_example():
    run = ScriptRun(str(EXAMPLES / "custom_receiver.py"))
    try:
        assert run.wait_for(lambda text: any(INT_PAIR_LINE.match(line)
                                             for line in text.splitlines()), 60), \
            "".join(run.errors)[-3000:]
        assert run.executors, "the example runs its executors as child processes"
    finally:
        code = run.finish(60, terminate=False)  # it stops itself after ten seconds
    assert code == 0, "".join(run.errors)[-3000:]
    text = run.text
    assert pprint_times(text) >= 5, text  # one block per 1 s batch for ~10 s
    counts = Counter()
    for line in text.splitlines():
        match = INT_PAIR_LINE.match(line)
        if match:
            second, count = int(match.group(1)), int(match.group(2))
            assert 0 <= second < 60
            counts[second] += count
    # a tick every 100 ms for about ten seconds (loosely: a busy host ticks less)
    assert 20 <= sum(counts.values()) <= 150, counts
    alive = run.leftover_executors()
    assert not alive, f"executors outlived the example's driver: {[p.pid for p in alive]}"
