"""The executor's copy of the files its application added (addFile, addPyFile,
addArchive), fetched from the driver before the task that first needs them.

Every ``LaunchTask`` carries the driver's file epoch. When it is newer than
the last one seen, the task thread asks the driver for the list of files
(on its task connection, authenticated like everything else) and fetches
each new one in chunks; then files are put in place under this executor's
SparkFiles root, archives unpacked, and ``.zip``/``.egg``/``.jar`` Python
dependencies put on ``sys.path`` (the root itself is on it already, for
``.py`` files).
"""
from __future__ import annotations

import importlib
import itertools
import os
import sys
from pathlib import Path

from sluicegate.common import spark_files as sf
from sluicegate.common.dealer_link import DealerLink
from sluicegate.common.protocol.executor import FetchFileChunk, FetchFiles, FileChunk, FileList

CHUNK_BYTES = 4 << 20


class FileFetchError(Exception):
    """An added file could not be fetched from the driver or put in place."""


class UserFiles:
    def __init__(self, root: Path, link: DealerLink, timeout_s: float):
        self.root = root
        self.link = link
        self.timeout_s = timeout_s
        self.epoch = 0
        self.installed: set[str] = set()
        self.python_paths: set[str] = set()
        self._request_ids = itertools.count(1)
        root.mkdir(parents=True, exist_ok=True)
        sf.set_root_directory(str(root), on_worker=True)
        sys.path.insert(1, str(root))  # ahead of PYTHONPATH: our copies win

    def update(self, epoch: int) -> None:
        """Have every file of ``epoch`` (the task's) in place before the task runs."""
        if epoch <= self.epoch:
            return
        listing = self._ask(FetchFiles(next(self._request_ids)), FileList)
        changed = False
        for entry in listing.entries:
            name, kind, size, python_path = _checked_entry(entry)
            if name not in self.installed:
                self._fetch(name, kind, size)
                self.installed.add(name)
                changed = True
            location = str(self.root / name)
            if python_path and location not in self.python_paths:
                sys.path.insert(1, location)
                self.python_paths.add(location)
                changed = True
        if changed:
            importlib.invalidate_caches()  # a module added since the last import is found
        self.epoch = epoch

    def _fetch(self, name: str, kind: str, size: int) -> None:
        incoming = self.root / f".{name}.incoming"
        try:
            with open(incoming, "wb") as out:
                offset = 0
                while True:
                    chunk = self._ask(FetchFileChunk(next(self._request_ids), name, offset,
                                                     CHUNK_BYTES), FileChunk)
                    if not chunk.found:
                        raise FileFetchError(f"the driver no longer has the added file {name!r}")
                    data = bytes(chunk.payload[0]) if chunk.payload else b""
                    out.write(data)
                    offset += len(data)
                    if not data or offset >= size:
                        break
            if offset != size:
                raise FileFetchError(f"added file {name!r}: got {offset} of {size} bytes")
            if kind == sf.FILE or kind == sf.COPY:
                os.replace(incoming, self.root / name)
            else:
                sf.install(kind, incoming, self.root / name)
        except (OSError, ValueError) as exc:
            raise FileFetchError(f"could not put the added file {name!r} in place: "
                                 f"{type(exc).__name__}: {exc}") from exc
        finally:
            try:
                incoming.unlink()
            except FileNotFoundError:
                pass

    def _ask(self, request, reply_type: type):
        reply = self.link.ask(request, reply_type, self.timeout_s)
        if reply is None:
            raise FileFetchError(f"the driver did not answer {type(request).__name__} within "
                                 f"{self.timeout_s:.0f}s")
        return reply


def _checked_entry(entry) -> tuple[str, str, int, bool]:
    if not (isinstance(entry, list) and len(entry) == 4):
        raise FileFetchError(f"malformed file list entry {entry!r}")
    name, kind, size, python_path = entry
    if not (isinstance(size, int) and size >= 0 and kind in sf.KINDS
            and isinstance(python_path, bool)):
        raise FileFetchError(f"malformed file list entry {entry!r}")
    try:
        return sf.check_name(name), kind, size, python_path
    except (TypeError, ValueError) as exc:
        raise FileFetchError(str(exc)) from None
