"""Running the shipped examples, and PySpark's, as users run them: as scripts in
a subprocess whose output a reader thread collects (``ScriptRun`` for ours,
``Example`` for PySpark's with their imports ``ported``), what they print
(``pprinted_counts``, ``pprint_blocks``), and what feeds them (``OneShotServer``,
``drop_file``).
"""
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

from conftest import executor_processes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TUPLE_LINE = re.compile(r"^\('[^']*', \d+\)$")


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    for key in ("SLUICEGATE_MASTER", "SLUICEGATE_JOB_ID"):  # run locally, whatever the caller
        env.pop(key, None)
    return env


def pprinted_counts(text: str) -> Counter:
    """Sum the ``('word', n)`` lines of pprint blocks."""
    total: Counter = Counter()
    for line in text.splitlines():
        if TUPLE_LINE.match(line):
            word, count = ast.literal_eval(line)
            total[word] += count
    return total


PPRINT_HEADER = "-------------------------------------------\nTime: "


class OneShotServer:
    """Sends ``payload`` to every client that connects and holds the connection open."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="test-example-server",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            conn.sendall(self.payload)
            self._connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._connections:
            conn.close()
        self.server.close()


def pprint_blocks(text: str) -> list[list[str]]:
    """Each complete pprint block's record lines."""
    blocks = []
    for chunk in text.split(PPRINT_HEADER)[1:]:
        lines = chunk.split("\n")[2:]  # the time line and the rule under it
        if "" not in lines:
            continue  # not finished yet
        blocks.append(lines[:lines.index("")])
    return blocks


def drop_file(directory: Path, name: str, text: str) -> None:
    """Write ``text`` under a hidden name, then rename it into place: a file stream
    never sees it half-written."""
    hidden = directory / f".{name}.tmp"
    hidden.write_text(text)
    os.rename(hidden, directory / name)


class ScriptRun:
    """An example run as a subprocess; its stdout collected by a reader thread."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=script_env(), text=True)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                             name="test-example-stdout", daemon=True),
            threading.Thread(target=lambda: self.errors.extend(iter(self.proc.stderr.readline, "")),
                             name="test-example-stderr", daemon=True)]
        for reader in self._readers:
            reader.start()
        self.executors: list[psutil.Process] = []

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.text):
                return True
            if self.proc.poll() is not None:
                return predicate(self.text)
            if not self.executors:
                self.executors = executor_processes(self.proc.pid)
            time.sleep(0.1)
        return False

    def finish(self, timeout_s: float, terminate: bool) -> int:
        """End the run (SIGTERM first if ``terminate``); kill it if it does not end in
        time. Returns its exit code; the executors must exit by themselves."""
        try:
            if terminate and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"the example did not end within {timeout_s}s")
        finally:
            for reader in self._readers:
                reader.join(5)
            self.proc.stdout.close()
            self.proc.stderr.close()
        return code

    def leftover_executors(self) -> list[psutil.Process]:
        _, alive = psutil.wait_procs(self.executors, timeout=15)
        for leftover in alive:
            leftover.kill()
        return alive


IMPORT_LINE = re.compile(r"^(from|import) pyspark\b", re.M)


def ported(examples_dir: Path, name: str, into: Path) -> Path:
    """The example with its import lines (and only those) rewritten."""
    lines = (examples_dir / name).read_text().splitlines(keepends=True)
    rewritten = [line.replace("pyspark", "sluicegate.driver", 1) if IMPORT_LINE.match(line)
                 else line for line in lines]
    assert rewritten != lines, f"{name} imports nothing from pyspark"
    script = into / name
    script.write_text("".join(rewritten))
    return script


class Example:
    """A ported example run as a script in ``cwd``; its output collected."""

    def __init__(self, script: Path, *args: str, cwd: Path):
        self.proc = subprocess.Popen([sys.executable, str(script), *args], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=script_env(), text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=lambda s=s, to=to: to.extend(iter(s.readline, "")),
                                          daemon=True)
                         for s, to in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()
        self.executors: list[psutil.Process] = []

    @property
    def text(self) -> str:
        return "".join(self.out)

    @property
    def errors(self) -> str:
        return "".join(self.err)[-3000:]

    def wait_for(self, predicate, timeout_s: float = 90) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.executors:
                self.executors = executor_processes(self.proc.pid)
            if predicate(self.text):
                return True
            if self.proc.poll() is not None:
                return predicate(self.text)
            time.sleep(0.1)
        return False

    def end(self, signum: int | None = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Send ``signum`` (None: wait for the example to end by itself); its
        executors must go too."""
        if signum is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        _, alive = psutil.wait_procs(self.executors, timeout=30)
        for leftover in alive:
            leftover.kill()
        assert not alive, f"executors outlived the example: {[p.pid for p in alive]}"
        return code
