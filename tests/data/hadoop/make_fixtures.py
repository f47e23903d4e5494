"""Regenerate the PySpark-written files of this directory (needs PySpark and Java).

    .venv/bin/python tests/data/hadoop/make_fixtures.py

Each dataset of tests/hadoop_fixtures.py is saved by PySpark into a directory
of its name; Hadoop's .crc side files are dropped, and the files listed in
GZIPPED are stored gzipped (they exceed one sync interval, 100 KB).
"""
import gzip
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/

from hadoop_fixtures import DATA, FIXTURES, GZIPPED  # noqa: E402
from pyspark import SparkConf, SparkContext  # noqa: E402


def main() -> None:
    sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("fixtures"))
    try:
        for name, (kind, records, partitions, options) in FIXTURES.items():
            target = DATA / name
            shutil.rmtree(target, ignore_errors=True)
            rdd = sc.parallelize(records, partitions)
            if kind == "pickle":
                rdd.saveAsPickleFile(str(target), **options)
            elif kind == "sequence":
                rdd.saveAsSequenceFile(str(target), **options)
            elif kind == "hadoop":
                rdd.saveAsHadoopFile(str(target), **options)
            elif kind == "newapi":
                rdd.saveAsNewAPIHadoopFile(str(target), **options)
            for crc in target.glob(".*.crc"):
                crc.unlink()
            if name in GZIPPED:
                packed = DATA / f"{name}.part-00000.gz"
                packed.write_bytes(gzip.compress((target / "part-00000").read_bytes(), mtime=0))
                shutil.rmtree(target)
    finally:
        sc.stop()


if __name__ == "__main__":
    main()
