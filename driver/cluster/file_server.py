"""The files an application added (``addFile``, ``addPyFile``, ``addArchive``),
served to its executors over their authenticated driver connection.

Each file is snapshotted when it is added: the driver's own copy goes into
its SparkFiles root (what ``SparkFiles.get`` finds on the driver), and the
form that travels (the file, a tar of a directory, the archive) is kept in
the application's directory. Each ``LaunchTask`` carries the epoch (it
grows with every change); an executor that has seen an older one asks for
the list and fetches each new file in chunks before the task runs, over its
authenticated driver connection -- no shared file system.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, replace
from pathlib import Path

CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class SharedFile:
    name: str           # its name under every SparkFiles root
    kind: str           # spark_files.FILE, DIRECTORY or an archive format
    shipped: Path       # what travels to executors
    size: int
    python_path: bool   # goes on sys.path (a .zip/.egg/.jar from addPyFile)
    uri: str            # as listFiles/listArchives show it
    archive: bool       # added with addArchive


class FileServer:
    """Added files by name; written by the user's threads, read by the driver loop."""

    def __init__(self, app_dir: Path):
        self.root = app_dir / "userFiles"  # the driver's SparkFiles root
        self.shipping = app_dir / "shipped"
        self.root.mkdir(parents=True, exist_ok=True)
        self.shipping.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, SharedFile] = {}
        self._by_uri: dict[str, SharedFile] = {}
        self._lock = threading.Lock()
        self._staged = itertools.count()
        self.epoch = 0  # grows with every change; a task launch carries it

    def _changed(self) -> None:
        self.epoch += 1

    def find(self, uri: str) -> SharedFile | None:
        with self._lock:
            return self._by_uri.get(uri)

    def named(self, name: str) -> SharedFile | None:
        with self._lock:
            return self._files.get(name)

    def add(self, shared: SharedFile) -> None:
        with self._lock:
            known = self._files.get(shared.name)
            if known is not None:
                raise ValueError(f"cannot add {shared.uri}: {known.uri} was already added under the "
                                 f"name {shared.name!r}, and a name can be added only once")
            self._files[shared.name] = shared
            self._by_uri[shared.uri] = shared
            self._changed()

    def put_on_python_path(self, name: str) -> None:
        """A file added before (addFile) is now a Python dependency too (addPyFile)."""
        with self._lock:
            shared = self._files[name]
            if not shared.python_path:
                self._files[name] = replace(shared, python_path=True)
                self._by_uri[shared.uri] = self._files[name]
                self._changed()

    def listed(self, archives: bool) -> list[str]:
        with self._lock:
            return [f.uri for f in self._files.values() if f.archive == archives]

    def python_paths(self) -> list[str]:
        with self._lock:
            return [f.name for f in self._files.values() if f.python_path]

    # -- the driver loop serves executors -----------------------------------------------
    def entries(self) -> list[list]:
        """``FileList.entries``: every file in the order added."""
        with self._lock:
            return [[f.name, f.kind, f.size, f.python_path] for f in self._files.values()]

    def chunk(self, name: str, offset: int, length: int) -> tuple[bool, int, bytes]:
        """(found, total size, up to ``length`` bytes from ``offset``)."""
        shared = self.named(name)
        if shared is None or offset < 0 or length < 0:
            return False, 0, b""
        try:
            with open(shared.shipped, "rb") as source:
                source.seek(offset)
                return True, shared.size, source.read(min(length, CHUNK_BYTES))
        except OSError:
            return False, 0, b""

    def staging_path(self, name: str) -> Path:
        """A fresh place to keep the shipped form of ``name``."""
        return self.shipping / f"{next(self._staged)}-{name}"
