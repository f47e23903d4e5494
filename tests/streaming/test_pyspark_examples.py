"""PySpark's own streaming examples run on sluicegate with only their imports rewritten.

The examples are read from the installed PySpark package (not copied into this
project); each test rewrites ``pyspark`` to ``sluicegate.driver`` in the import
lines, writes the script to a temporary directory and runs it there, as a user
would. Skipped when PySpark (with its examples) is not installed.
"""
from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from example_runs import Example, OneShotServer, drop_file, ported, pprint_blocks, pprinted_counts


@pytest.fixture(scope="module")
def examples_dir() -> Path:
    pyspark = pytest.importorskip("pyspark")
    found = Path(pyspark.__file__).parent / "examples" / "src" / "main" / "python" / "streaming"
    if not (found / "network_wordcount.py").exists():
        pytest.skip("this PySpark installation has no example programs")
    return found


def test_queue_stream(examples_dir, tmp_path):
    run = Example(ported(examples_dir, "queue_stream.py", tmp_path), cwd=tmp_path)
    code = run.end(None, 120)  # it stops itself after six seconds
    assert code == 0, run.errors
    blocks = [b for b in pprint_blocks(run.text) if b]
    assert len(blocks) == 5, run.text
    assert all(sorted(b) == sorted(f"({d}, 100)" for d in range(10)) for b in blocks)


def test_hdfs_wordcount_on_a_local_directory(examples_dir, tmp_path):
    watched = tmp_path / "localdir"
    watched.mkdir()
    run = Example(ported(examples_dir, "hdfs_wordcount.py", tmp_path), str(watched), cwd=tmp_path)
    try:
        assert run.wait_for(lambda text: "Time: " in text), run.errors
        drop_file(watched, "words.txt", "hello world\nhello sluice\n")
        expected = Counter(hello=2, world=1, sluice=1)
        assert run.wait_for(lambda text: pprinted_counts(text) == expected, 60), run.text
    finally:
        assert run.end() in (0, -signal.SIGTERM)


def test_network_wordcount(examples_dir, tmp_path):
    server = OneShotServer(b"apple banana apple\n" * 3 + b"cherry\n")
    run = Example(ported(examples_dir, "network_wordcount.py", tmp_path), "127.0.0.1",
                  str(server.port), cwd=tmp_path)
    try:
        expected = Counter(apple=6, banana=3, cherry=1)
        assert run.wait_for(lambda text: pprinted_counts(text) == expected), \
            run.text + run.errors
    finally:
        server.close()
        assert run.end() in (0, -signal.SIGTERM)


def test_stateful_network_wordcount(examples_dir, tmp_path):
    server = OneShotServer(b"apple banana apple hello\n")
    run = Example(ported(examples_dir, "stateful_network_wordcount.py", tmp_path), "127.0.0.1",
                  str(server.port), cwd=tmp_path)
    expected = sorted(["('apple', 2)", "('banana', 1)", "('hello', 2)", "('world', 1)"])
    try:
        assert run.wait_for(lambda text: any(sorted(b) == expected for b in pprint_blocks(text))), \
            run.text + run.errors
        assert list((tmp_path / "checkpoint").glob("checkpoint-*"))  # its ssc.checkpoint()
    finally:
        server.close()
        assert run.end() in (0, -signal.SIGTERM)


def test_network_wordjoinsentiments(examples_dir, tmp_path):
    # The example reads this file relative to where it runs, a word and its score a line.
    (tmp_path / "data" / "streaming").mkdir(parents=True)
    (tmp_path / "data" / "streaming" / "AFINN-111.txt").write_text(
        "happy 3\ngood 2\nsad -2\nbad -3\n")
    server = OneShotServer(b"happy happy sad good day unknown\n")
    run = Example(ported(examples_dir, "network_wordjoinsentiments.py", tmp_path), "127.0.0.1",
                  str(server.port), cwd=tmp_path)
    try:
        assert run.wait_for(lambda text: "(3 total):\nhappy (6 happiness)\ngood (2 happiness)\n"
                                         "sad (-2 happiness)\n" in text), run.text + run.errors
    finally:
        server.close()
        assert run.end() in (0, -signal.SIGTERM)


COUNTS_LINE = re.compile(r"^Counts at time .* (\[.*\])$", re.M)


@pytest.mark.slow
def test_recoverable_network_wordcount_recovers_after_sigkill(examples_dir, tmp_path):
    """Killed with SIGKILL and started again with the same arguments: recovered from its
    checkpoint (its setup function, which prints "Creating new context" and deletes the
    output file, is not called again), it goes on counting and appending."""
    script = ported(examples_dir, "recoverable_network_wordcount.py", tmp_path)
    server = OneShotServer(b"a happy b day happy c\n")  # every connection gets it again
    args = ("127.0.0.1", str(server.port), str(tmp_path / "checkpoint"), str(tmp_path / "out.txt"))
    try:
        run = Example(script, *args, cwd=tmp_path)
        try:
            assert run.wait_for(lambda text: "('happy', 2)" in text), run.text + run.errors
            assert "Creating new context" in run.text
            assert "Dropped 3 word(s) totally" in run.text  # "a", "b", "c" are excluded
        finally:
            assert run.end(signal.SIGKILL) == -signal.SIGKILL
        written = (tmp_path / "out.txt").read_text()
        assert "('happy', 2)" in written

        again = Example(script, *args, cwd=tmp_path)
        try:
            assert again.wait_for(lambda text: "('happy', 2)" in text), again.text + again.errors
            assert "Creating new context" not in again.text
            assert "recovering streaming context" in "".join(again.err)
        finally:
            again.end()
        after = (tmp_path / "out.txt").read_text()
        assert after.startswith(written), "the output file was not kept"
        assert after.count("('happy', 2)") > written.count("('happy', 2)")
    finally:
        server.close()
