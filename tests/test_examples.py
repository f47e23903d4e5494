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
from pathlib import Path

import psutil

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TUPLE_LINE = re.compile(r"^\('[^']*', \d+\)$")


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    for key in ("SLUICEGATE_MASTER", "SLUICEGATE_JOB_ID"):  # run locally, whatever the caller
        env.pop(key, None)
    return env


def executors_of(pid: int) -> list[psutil.Process]:
    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if "sluicegate.worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def pprinted_counts(text: str) -> Counter:
    """Sum the ``('word', n)`` lines of pprint blocks."""
    total: Counter = Counter()
    for line in text.splitlines():
        if TUPLE_LINE.match(line):
            word, count = ast.literal_eval(line)
            total[word] += count
    return total


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
        executors = executors_of(proc.pid)
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
