"""Files shipped with a job: addFile, addPyFile, addArchive and their listings.

As in PySpark, a file is copied into the driver's SparkFiles root when it is
added (so ``SparkFiles.get`` works on the driver) and every executor gets its
own copy before it runs its next task (``cluster/file_server.py`` serves them
over the executors' authenticated connection). ``.py`` files, and ``.zip``,
``.egg`` and ``.jar`` files added with ``addPyFile``, are importable in tasks
and on the driver.
"""
from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from sluicegate.common import spark_files as sf

from ..cluster.file_server import SharedFile

if TYPE_CHECKING:
    from ..cluster.file_server import FileServer

log = logging.getLogger("sluicegate.driver")

_DOWNLOAD_SCHEMES = ("http", "https", "ftp")
_adding = threading.Lock()  # one add at a time: a name is checked, copied, then registered


class FileDistribution:
    """Mixin of ``SparkContext``."""

    PACKAGE_EXTENSIONS = (".zip", ".egg", ".jar")

    # -- adding -----------------------------------------------------------------------
    def addFile(self, path: str, recursive: bool = False) -> None:
        """Add a file (or, with ``recursive``, a directory) to be copied to every
        executor; tasks find it with ``SparkFiles.get(name)``.

        ``path`` is a local path, a ``file:`` URI, or an http(s)/ftp URL. A path
        can be added only once; adding it again is ignored.
        """
        self._add_file(path, recursive, python_path=False)

    def addPyFile(self, path: str) -> None:
        """Add a ``.py``, ``.zip``, ``.egg`` or ``.jar`` dependency that every task
        (and the driver) can import from now on."""
        shared = self._add_file(path, False, python_path=True)
        if shared is not None and shared.python_path:
            location = str(self._file_server.root / shared.name)
            if location not in sys.path:
                sys.path.insert(1, location)
                self._driver_python_paths.append(location)
        importlib.invalidate_caches()

    def addArchive(self, path: str) -> None:
        """Add an archive (.zip, .jar, .tar, .tar.gz, .tgz) to be unpacked on every
        executor; ``SparkFiles.get(name)`` is the directory it was unpacked into.
        ``path#alias`` unpacks it under the name ``alias``. Adding a path again is
        ignored."""
        location, fragment = str(path).split("#", 1) if "#" in str(path) else (str(path), "")
        with _adding:
            source, uri = self._fetch_source(location, what="archive")
            if fragment:
                uri += "#" + fragment
            server = self._file_server
            if server.find(uri) is not None:
                log.warning("The path %s has been added already; adding it again is ignored", uri)
                return
            if source.is_dir():
                raise ValueError(f"cannot add {uri} as an archive: it is a directory "
                                 "(addFile(path, recursive=True) adds a directory)")
            name = sf.check_name(fragment or source.name)
            self._refuse_taken_name(name, uri)
            fmt = sf.archive_format(source.name)
            if fmt == sf.COPY:
                log.warning("%s is not an archive sluicegate unpacks (.zip, .jar, .tar, .tar.gz, "
                            ".tgz); it is copied as it is", uri)
            shipped = server.staging_path(name)
            shutil.copyfile(source, shipped)
            sf.install(fmt, shipped, server.root / name)
            server.add(SharedFile(name, fmt, shipped, shipped.stat().st_size, False, uri, True))

    @property
    def listFiles(self) -> list[str]:
        """The files added with ``addFile`` and ``addPyFile``, as URIs."""
        return self._file_server.listed(archives=False)

    @property
    def listArchives(self) -> list[str]:
        """The archives added with ``addArchive``, as URIs."""
        return self._file_server.listed(archives=True)

    # -- internals --------------------------------------------------------------------
    @property
    def _file_server(self) -> "FileServer":
        return self._runtime.files

    def _add_file(self, path: str, recursive: bool, python_path: bool) -> SharedFile | None:
        with _adding:
            source, uri = self._fetch_source(str(path), what="file")
            server = self._file_server
            if source.is_dir():
                if not recursive:
                    raise ValueError(f"cannot add {uri}: it is a directory; "
                                     "addFile(path, recursive=True) adds a directory")
                uri = uri.rstrip("/") + "/"
            known = server.find(uri)
            if known is not None:
                if python_path and _is_package(known.name) and not known.python_path:
                    server.put_on_python_path(known.name)
                    return server.named(known.name)
                log.warning("The path %s has been added already; adding it again is ignored", uri)
                return None
            name = sf.check_name(source.name)
            self._refuse_taken_name(name, uri)
            target = server.root / name
            if source.is_dir():
                shipped = server.staging_path(name + ".tar")
                sf.pack_directory(source, shipped)
                sf.install(sf.DIRECTORY, shipped, target)
                kind = sf.DIRECTORY
            else:
                sf.install(sf.FILE, source, target)
                shipped, kind = target, sf.FILE  # the driver's snapshot is what travels
            shared = SharedFile(name, kind, shipped, shipped.stat().st_size,
                                python_path and _is_package(name), uri, False)
            server.add(shared)
            return shared

    def _refuse_taken_name(self, name: str, uri: str) -> None:
        taken = self._file_server.named(name)
        if taken is not None:
            raise ValueError(f"cannot add {uri}: {taken.uri} was already added under the name "
                             f"{name!r} (SparkFiles.get finds files by name, so each name can be "
                             "added only once)")

    def _fetch_source(self, path: str, what: str) -> tuple[Path, str]:
        """The local file to snapshot, and the URI that lists it."""
        if not path:
            raise ValueError(f"the path of the {what} to add is empty")
        parsed = urllib.parse.urlparse(path)
        scheme = parsed.scheme.lower()
        if scheme in _DOWNLOAD_SCHEMES:
            name = Path(urllib.parse.unquote(parsed.path)).name
            if not name:
                raise ValueError(f"cannot add {path}: the URL does not end in a file name")
            download = self._file_server.staging_path("download")
            download.mkdir()
            local = download / sf.check_name(name)
            with urllib.request.urlopen(path, timeout=60) as response, open(local, "wb") as out:
                shutil.copyfileobj(response, out)
            return local, path
        if scheme == "file":
            local = Path(urllib.parse.unquote(parsed.path))
        elif scheme and len(scheme) > 1:  # (a one-letter "scheme" is a Windows drive)
            raise ValueError(f"cannot add {path}: sluicegate reads {what}s from local paths, "
                             f"file: URIs and http(s)/ftp URLs, not from '{scheme}:'")
        else:
            local = Path(path)
        local = Path(os.path.abspath(local))
        if not local.exists():
            raise FileNotFoundError(f"File file:{local} does not exist")
        return local, f"file:{local}"

    def _start_files(self, py_files: list[str]) -> None:
        """At start: SparkFiles finds the driver's copies; spark.files, spark.archives,
        spark.submit.pyFiles and the ``pyFiles`` argument are added."""
        self._driver_python_paths: list[str] = []
        root = str(self._file_server.root)
        sf.set_root_directory(root, on_worker=False)
        sys.path.insert(1, root)
        self._driver_python_paths.append(root)
        for key, add in (("spark.files", self.addFile), ("spark.archives", self.addArchive),
                         ("spark.submit.pyFiles", self.addPyFile)):
            for item in (self._conf.get(key) or "").split(","):
                if item.strip():
                    add(item.strip())
        for item in py_files or []:
            self.addPyFile(item)

    def _stop_files(self) -> None:
        """The driver's copies go with the application directory: off sys.path."""
        for location in getattr(self, "_driver_python_paths", []):
            try:
                sys.path.remove(location)
            except ValueError:
                pass
        self._driver_python_paths = []
        if sf.SparkFiles._root_directory == str(self._file_server.root):
            sf.set_root_directory(None, on_worker=False)


def _is_package(name: str) -> bool:
    return name[-4:].lower() in FileDistribution.PACKAGE_EXTENSIONS
