"""Reading and writing text files (textFile, wholeTextFiles, saveAsTextFile)
on real executor processes, against plain Python reads of the same files."""
from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

PROPS = settings(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def hadoop_lines(raw: bytes) -> list[str]:
    """What Hadoop's LineReader yields: lines end at \\n, \\r\\n or a lone \\r."""
    lines = re.split(r"\r\n|\r|\n", raw.decode("utf-8"))
    if lines[-1] == "":
        lines.pop()
    return lines


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


# -- textFile ------------------------------------------------------------------------------

def test_text_file_reads_lines(sc, tmp_path):
    path = write(tmp_path / "a.txt", "first line\nsecond\n\nünïcødé 😀\nlast, no newline")
    rdd = sc.textFile(str(path))
    assert rdd.getNumPartitions() == 2  # defaultMinPartitions
    assert rdd.collect() == ["first line", "second", "", "ünïcødé 😀", "last, no newline"]
    assert rdd.count() == 5
    assert sc.textFile(f"file://{path}").collect() == rdd.collect()
    assert sc.textFile(f"file:{path}", 1).collect() == rdd.collect()


def test_text_file_splits_like_hadoop(sc, tmp_path):
    text = "".join(f"line {i} " + "x" * (i % 17) + "\n" for i in range(1000))
    path = write(tmp_path / "a.txt", text)
    # Lines per partition that PySpark 4.3 gives for this file.
    expected = {1: [1000], 2: [505, 495], 5: [206, 199, 199, 197, 199],
                7: [150, 141, 143, 141, 141, 143, 141],
                13: [83, 78, 75, 78, 75, 78, 75, 77, 76, 77, 75, 77, 76]}
    for min_partitions, sizes in expected.items():
        parts = sc.textFile(str(path), min_partitions).glom().collect()
        assert [len(p) for p in parts] == sizes
        assert [line for p in parts for line in p] == text.splitlines()


line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                    max_size=12)


@PROPS
@given(lines=st.lists(st.tuples(line_text, st.sampled_from(["\n", "\r\n", "\r"])), max_size=40),
       trailing=st.booleans(), min_partitions=st.integers(1, 25))
def test_no_line_is_lost_or_duplicated_at_split_boundaries(sc, tmp_path_factory, lines, trailing,
                                                           min_partitions):
    raw = "".join(text + end for text, end in lines)
    if lines and not trailing:
        raw = raw.removesuffix(lines[-1][1])
    path = write(tmp_path_factory.mktemp("split") / "data.txt", raw)
    expected = hadoop_lines(raw.encode())
    rdd = sc.textFile(str(path), min_partitions)
    assert rdd.collect() == expected
    assert rdd.count() == len(expected)
    if len(raw.encode()) >= 2 * min_partitions:
        assert rdd.getNumPartitions() >= min_partitions


def test_crlf_and_lone_cr_line_endings(sc, tmp_path):
    path = write(tmp_path / "dos.txt", b"one\r\ntwo\r\n\r\nthree\r\nfour")
    mac = write(tmp_path / "mac.txt", b"a\rb\rc\r\rd")
    mixed = write(tmp_path / "mixed.txt", "x\ry\r\nz\n\rü\r".encode())
    for min_partitions in range(1, 12):
        assert sc.textFile(str(path), min_partitions).collect() == ["one", "two", "", "three", "four"]
        assert sc.textFile(str(mac), min_partitions).collect() == ["a", "b", "c", "", "d"]  # as PySpark
        assert sc.textFile(str(mixed), min_partitions).collect() == ["x", "y", "z", "", "ü"]
    with gzip.open(tmp_path / "mac.txt.gz", "wb") as f:
        f.write(b"a\rb\rc\r\rd")
    assert sc.textFile(str(tmp_path / "mac.txt.gz")).collect() == ["a", "b", "c", "", "d"]


def test_text_file_directory_glob_and_comma_list(sc, tmp_path):
    write(tmp_path / "d" / "a.txt", "a1\na2\n")
    write(tmp_path / "d" / "b.txt", "b1\n")
    write(tmp_path / "d" / "c.log", "c1\nc2\nc3\n")
    write(tmp_path / "d" / "_SUCCESS", "")
    write(tmp_path / "d" / ".hidden.crc", "not data\n")
    write(tmp_path / "other.txt", "o1\n")
    directory = tmp_path / "d"
    assert sorted(sc.textFile(str(directory)).collect()) == ["a1", "a2", "b1", "c1", "c2", "c3"]
    assert sorted(sc.textFile(f"{directory}/*.txt").collect()) == ["a1", "a2", "b1"]
    listed = sc.textFile(f"{directory}/a.txt,{tmp_path}/other.txt").collect()
    assert listed == ["a1", "a2", "o1"]
    mixed = sc.textFile(f"{directory}/*.log,{tmp_path / 'other.txt'}").collect()
    assert mixed == ["c1", "c2", "c3", "o1"]


def test_gzip_files_are_read_whole_and_decompressed(sc, tmp_path):
    lines = [f"compressed {i} ✓" for i in range(500)]
    (tmp_path / "d").mkdir()
    with gzip.open(tmp_path / "d" / "part.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    write(tmp_path / "d" / "plain.txt", "p1\np2\n")
    gz = sc.textFile(str(tmp_path / "d" / "part.txt.gz"), 8)
    assert gz.getNumPartitions() == 1  # gzip cannot be split
    assert gz.collect() == lines
    both = sc.textFile(str(tmp_path / "d"), 4)
    assert sorted(both.collect()) == sorted(lines + ["p1", "p2"])


def test_empty_files(sc, tmp_path):
    empty = write(tmp_path / "d" / "empty.txt", "")
    write(tmp_path / "d" / "full.txt", "x\ny\n")
    assert sc.textFile(str(empty)).collect() == []
    assert sc.textFile(str(empty)).count() == 0
    assert sc.textFile(str(empty)).isEmpty()
    assert sc.textFile(str(empty)).getNumPartitions() == 0  # Spark drops empty splits
    assert sorted(sc.textFile(str(tmp_path / "d"), 3).collect()) == ["x", "y"]
    only_empty = tmp_path / "e"
    write(only_empty / "a.txt", "")
    write(only_empty / "b.txt", "")
    assert sc.textFile(str(only_empty)).collect() == []


def test_missing_input_path_is_a_clear_error(sc, tmp_path):
    missing = tmp_path / "no" / "such.txt"
    with pytest.raises(FileNotFoundError, match="Input path does not exist"):
        sc.textFile(str(missing)).collect()
    with pytest.raises(FileNotFoundError, match="such.txt"):
        sc.textFile(f"file://{missing}").count()
    write(tmp_path / "there.txt", "x\n")
    with pytest.raises(FileNotFoundError):
        sc.textFile(f"{tmp_path / 'there.txt'},{missing}").collect()
    with pytest.raises(FileNotFoundError):
        sc.textFile(str(tmp_path / "nothing-*.txt")).collect()
    with pytest.raises(FileNotFoundError):
        sc.wholeTextFiles(str(missing)).collect()
    assert sc.textFile(str(tmp_path / "there.txt")).collect() == ["x"]  # the context still works


# -- wholeTextFiles ------------------------------------------------------------------------

def test_whole_text_files(sc, tmp_path):
    contents = {"a.txt": "alpha\nbeta\n", "b.txt": "dos\r\nline\r\n", "c.txt": "", "ü.txt": "ünï\n"}
    for name, text in contents.items():
        write(tmp_path / "d" / name, text)
    write(tmp_path / "d" / "_SUCCESS", "")
    with gzip.open(tmp_path / "d" / "z.txt.gz", "wt") as f:
        f.write("zipped\n")
    expected = {f"file:{(tmp_path / 'd' / name).resolve()}": text for name, text in contents.items()}
    expected[f"file:{(tmp_path / 'd' / 'z.txt.gz').resolve()}"] = "zipped\n"
    rdd = sc.wholeTextFiles(str(tmp_path / "d"))
    result = rdd.collect()
    assert len(result) == len(expected)
    assert dict(result) == expected
    assert all(path.startswith("file:/") and not path.startswith("file://") for path, _ in result)
    assert sorted(sc.wholeTextFiles(str(tmp_path / "d"), 3).values().collect()) == sorted(
        expected.values())
    a_and_b = sc.wholeTextFiles(f"{tmp_path / 'd' / 'a.txt'},{tmp_path / 'd' / 'b.txt'}")
    assert sorted(a_and_b.values().collect()) == ["alpha\nbeta\n", "dos\r\nline\r\n"]
    assert sorted(sc.wholeTextFiles(f"{tmp_path}/d/[ab].txt").keys().collect()) == sorted(
        f"file:{(tmp_path / 'd' / n).resolve()}" for n in ("a.txt", "b.txt"))


# -- saveAsTextFile ------------------------------------------------------------------------

def test_save_as_text_file(sc, tmp_path):
    data = [1, (2, "a"), "x", b"raw bytes", None, "ünïcødé", 2.5, [1, 2], {"k": 1}]
    out = tmp_path / "out"
    sc.parallelize(data, 3).saveAsTextFile(str(out))
    names = sorted(os.listdir(out))
    assert names == ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    assert (out / "_SUCCESS").read_bytes() == b""
    written = b"".join((out / f"part-0000{i}").read_bytes() for i in range(3))
    expected = b"".join((x if isinstance(x, bytes) else str(x).encode("utf-8")) + b"\n" for x in data)
    assert written == expected
    assert sc.textFile(str(out)).collect() == [
        x.decode() if isinstance(x, bytes) else str(x) for x in data]


def test_save_as_text_file_refuses_an_existing_path(sc, tmp_path):
    out = tmp_path / "out"
    sc.parallelize(["first"], 1).saveAsTextFile(str(out))
    with pytest.raises(FileExistsError, match="already exists"):
        sc.parallelize(["second"], 1).saveAsTextFile(str(out))
    with pytest.raises(FileExistsError):
        sc.parallelize(["second"], 1).saveAsTextFile(f"file://{out}")
    assert sc.textFile(str(out)).collect() == ["first"]


def test_save_as_text_file_with_empty_partitions(sc, tmp_path):
    out = tmp_path / "sparse"
    sc.parallelize(range(3), 5).map(lambda x: x * 10).saveAsTextFile(str(out))
    names = sorted(os.listdir(out))
    assert names == ["_SUCCESS"] + [f"part-{i:05d}" for i in range(5)]
    assert sorted(sc.textFile(str(out)).collect(), key=int) == ["0", "10", "20"]
    nothing = tmp_path / "nothing"
    sc.emptyRDD().saveAsTextFile(str(nothing))
    assert sorted(os.listdir(nothing)) == ["_SUCCESS"]
    assert sc.textFile(str(nothing)).collect() == []


def test_save_and_read_back_through_a_shuffle(sc, tmp_path):
    words = "to be or not to be that is the question".split()
    counts = sc.parallelize(words, 3).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b, 2)
    out = tmp_path / "counts"
    counts.saveAsTextFile(f"file:{out}")
    assert sorted(os.listdir(out)) == ["_SUCCESS", "part-00000", "part-00001"]
    read_back = sorted(sc.textFile(str(out)).collect())
    assert read_back == sorted(str((w, words.count(w))) for w in set(words))
