"""SparkFiles: where files added with ``SparkContext.addFile`` (and
``addPyFile``, ``addArchive``) are found, on the driver and inside tasks
(PySpark's ``pyspark.SparkFiles``).

Both sides need it, so it lives here: the driver sets the root directory
when a SparkContext starts, an executor sets it to its own copy of the
files when it starts.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import ClassVar


class SparkFiles:
    """Resolves the paths of files added through ``SparkContext.addFile``.

    Only classmethods; it is not meant to be instantiated.
    """

    _root_directory: ClassVar[str | None] = None
    _is_running_on_worker: ClassVar[bool] = False

    def __init__(self) -> None:
        raise NotImplementedError("Do not construct SparkFiles objects")

    @classmethod
    def get(cls, filename: str) -> str:
        """The absolute path of a file added with ``addFile``/``addPyFile``
        (or the directory an ``addArchive`` archive was unpacked into)."""
        return os.path.abspath(os.path.join(cls.getRootDirectory(), filename))

    @classmethod
    def getRootDirectory(cls) -> str:
        """The directory that holds the added files (the driver's own copy on the
        driver, the executor's inside a task)."""
        if cls._root_directory is None:
            raise RuntimeError("SparkFiles has no root directory: start a SparkContext first "
                               "(or call it from a task)")
        return cls._root_directory


def set_root_directory(path: str | None, on_worker: bool) -> None:
    """Where this process keeps the added files (the context or the executor says)."""
    SparkFiles._root_directory = path
    SparkFiles._is_running_on_worker = on_worker


# -- kinds of added files, and installing one (the driver and every executor do it) ------

FILE = "file"
DIRECTORY = "directory"  # travels as a tar, unpacked into a directory of the same name
COPY = "copy"            # an addArchive path that is no archive: copied as it is (as Spark)
_ARCHIVE_SUFFIXES = ((".tar.gz", "tar.gz"), (".tgz", "tar.gz"), (".tar", "tar"),
                     (".zip", "zip"), (".jar", "zip"))
ARCHIVE_FORMATS = ("zip", "tar", "tar.gz", COPY)
KINDS = (FILE, DIRECTORY, *ARCHIVE_FORMATS)


def archive_format(filename: str) -> str:
    """How an archive is unpacked, from its name: zip (.zip, .jar), tar, tar.gz
    (.tar.gz, .tgz), or ``copy`` for anything else."""
    lower = filename.lower()
    for suffix, fmt in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return fmt
    return COPY


def check_name(name: str) -> str:
    """An added file's name is one path component: never a way out of the root."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a valid name for an added file")
    return name


def install(kind: str, shipped: Path, target: Path) -> None:
    """Put one added file in place at ``target`` from its shipped form ``shipped``
    (the file itself, a tar of a directory, or an archive), replacing nothing that
    is already there."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of added file {kind!r}")
    staging = target.with_name(f".{target.name}.installing")
    _remove(staging)
    try:
        if kind in (FILE, COPY):
            shutil.copyfile(shipped, staging)
        elif kind == "zip":
            staging.mkdir()
            with zipfile.ZipFile(shipped) as archive:
                archive.extractall(staging)  # zipfile drops absolute paths and ".." parts
        else:  # a directory's tar, a tar or a tar.gz
            staging.mkdir()
            with tarfile.open(shipped, "r:*") as archive:
                _extract_tar(archive, staging)
        os.replace(staging, target)  # whole or not at all, for a task that looks
    finally:
        _remove(staging)


def pack_directory(source: Path, tar_path: Path) -> None:
    """The shipped form of an added directory: an uncompressed tar of its content."""
    with tarfile.open(tar_path, "w") as archive:
        for child in sorted(source.iterdir()):
            archive.add(child, arcname=child.name)


def _extract_tar(archive: tarfile.TarFile, dest: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        # No absolute paths, no "..", no links out of dest, no devices (PEP 706).
        archive.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in archive.getmembers():
        where = (dest / member.name).resolve()
        if not (where == root or root in where.parents) or not (member.isfile() or member.isdir()):
            raise ValueError(f"refusing to unpack {member.name!r}: it would leave {dest}")
    archive.extractall(dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
