"""Where an application's files live: a local path, or a URL that fsspec opens.

Inputs (``textFile`` and the other file inputs, file streams), outputs
(``saveAsTextFile(s)`` and the Hadoop and pickle formats), RDD and state
checkpoints, metadata checkpoints and the receivers' write-ahead log reach
their files through this module.

* A plain path or a ``file:`` URI is the local fast path: os calls, and
  nothing beyond the standard library is imported.
* A URL of any other scheme (``s3://``, ``s3a://``, ``gs://``, ``hdfs://``,
  ``memory://`` ...) is opened with fsspec and that scheme's backend (s3fs for
  S3), the optional extra ``pip install 'sluicegate[remote]'``. Paths listed
  from it keep the scheme the application wrote (``s3a://`` stays ``s3a://``).

Storage options come from the application's configuration (``configure``):
Spark's s3a keys where one maps (``spark.hadoop.fs.s3a.endpoint``,
``.access.key``, ``.secret.key``, ``.path.style.access`` ..., also per bucket
as ``spark.hadoop.fs.s3a.bucket.<bucket>.<key>``), and any fsspec option of
any scheme as ``spark.sluicegate.fs.<scheme>.<option>`` (dots in the option
reach into nested dicts: ``...fs.s3.client_kwargs.region_name``). The driver
configures this module when its runtime starts, and hands the same keys to
each executor when it registers (``ExecutorRegistered.conf``, on the
application's authenticated connection).

Object stores have no rename, but a PUT of one object is atomic, so a file is
uploaded whole to its final name once it was written completely (to memory,
or past ``SPOOL_BYTES`` to a local temporary file): no reader ever sees a part
of it. Other remote file systems (HDFS, SFTP ...) get a temporary name and a
rename. A directory of parts is committed by ``commit_directory``.

``memory://`` is the memory of one process. sluicegate's executors are other
processes, so it cannot hold what executors read or write (RDD inputs,
outputs, RDD and state checkpoints): ``check_shared`` refuses it there. It
serves the driver-only files (metadata checkpoints, the write-ahead log) and
fast tests.
"""
from __future__ import annotations

import glob
import io
import json
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping

log = logging.getLogger("sluicegate.storage")

EXTRA = "sluicegate[remote]"
SUCCESS = "_SUCCESS"
STAGING = "_temporary"  # Hadoop's name: readers skip names starting with "_"
SPOOL_BYTES = 32 << 20  # what a write keeps in memory before it spills to a local file
READ_BLOCK_BYTES = 4 << 20  # read-ahead of a remote file (fsspec's block_size)

# Schemes whose writes become visible whole, at once, when the upload completes.
OBJECT_STORES = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "adl",
                           "oss", "memory"})
# Hadoop's names -> fsspec's.
SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}
PROCESS_LOCAL = frozenset({"memory"})

S3A_PREFIX = "spark.hadoop.fs.s3a."
GENERIC_PREFIX = "spark.sluicegate.fs."
KEY_PREFIXES = ("spark.hadoop.fs.", GENERIC_PREFIX)

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
_conf: dict[str, str] = {}
_configured = False
_conf_lock = threading.Lock()


class StorageError(Exception):
    """A file system URL that cannot be used (missing backend, process-local file system)."""


# -- paths ---------------------------------------------------------------------------------

def scheme(path: str | os.PathLike) -> str | None:
    """The URL scheme (lower case) of a remote path; None for a local one."""
    match = _URL.match(path) if isinstance(path, str) else None
    if match is None:
        return None
    found = match.group(1).lower()
    return None if found == "file" else found


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL for fsspec (anything but a local path or ``file:``)."""
    return scheme(path) is not None


def local_path(path: str | os.PathLike) -> str:
    """A local path without its ``file://`` or ``file:`` prefix."""
    text = os.fspath(path)
    if text.startswith("file://"):
        return text[len("file://"):]
    if text.startswith("file:"):
        return text[len("file:"):]
    return text


def absolute(path: str | os.PathLike) -> str:
    """``path`` made absolute (local), or the URL without a trailing slash."""
    if is_remote(path):
        return _strip_slash(os.fspath(path))
    return str(Path(local_path(path)).absolute())


def join(directory: str | os.PathLike, name: str) -> str:
    if is_remote(directory):
        return _strip_slash(os.fspath(directory)) + "/" + name
    return os.path.join(os.fspath(directory), name)


def parent(path: str | os.PathLike) -> str:
    if is_remote(path):
        text = _strip_slash(os.fspath(path))
        head, _, _ = text.rpartition("/")
        return head if not head.endswith(":/") else text
    return str(Path(local_path(path)).parent)


def basename(path: str | os.PathLike) -> str:
    return _strip_slash(os.fspath(path)).rpartition("/")[2]


def check_shared(path: str | os.PathLike, what: str) -> None:
    """Refuse a process-local file system (``memory://``) for files executors use."""
    found = scheme(path)
    if found in PROCESS_LOCAL:
        raise StorageError(
            f"{what} {os.fspath(path)}: {found}:// is the memory of one process, and "
            "sluicegate's executors are separate processes that cannot see it. Use a file "
            "system every process reaches (a local path on one machine, s3://, gs://, "
            f"hdfs://); {found}:// serves only the driver's own files (metadata checkpoints "
            "and the write-ahead log) and tests")


def _strip_slash(text: str) -> str:
    stripped = text.rstrip("/")
    return text if stripped.endswith(":") else stripped


# -- storage options ------------------------------------------------------------------------

def storage_conf(conf: Mapping[str, Any]) -> dict[str, str]:
    """The keys of ``conf`` that configure file systems (what executors are handed)."""
    return {k: v for k, v in conf.items() if isinstance(k, str) and k.startswith(KEY_PREFIXES)}


def configure(conf: Mapping[str, Any]) -> None:
    """Take this process's storage options from an application's configuration."""
    global _conf, _configured
    with _conf_lock:
        _conf = storage_conf(conf)
        _configured = True


def is_configured() -> bool:
    return _configured


def storage_options(url_scheme: str, bucket: str = "") -> dict:
    """The fsspec options for ``url_scheme`` (and, for S3, ``bucket``) from the configuration."""
    conf = _conf
    canonical = SCHEME_ALIASES.get(url_scheme, url_scheme)
    options: dict = {}
    if canonical == "s3":
        options = s3a_options(conf, bucket)
    for name in dict.fromkeys((canonical, url_scheme)):
        prefix = f"{GENERIC_PREFIX}{name}."
        for key, value in sorted(conf.items()):
            if key.startswith(prefix) and len(key) > len(prefix):
                _put(options, key[len(prefix):].split("."), _option_value(value))
    return options


_SSE_ALGORITHMS = {"SSE-S3": "AES256", "SSE-KMS": "aws:kms", "DSSE-KMS": "aws:kms:dsse"}
_ANONYMOUS = "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"


def s3a_options(conf: Mapping[str, Any], bucket: str = "") -> dict:
    """s3fs options from Hadoop's s3a keys; ``fs.s3a.bucket.<bucket>.<key>`` wins for it."""
    keys = {k[len(S3A_PREFIX):]: str(v) for k, v in conf.items()
            if k.startswith(S3A_PREFIX) and not k.startswith(S3A_PREFIX + "bucket.")}
    if bucket:
        own = f"{S3A_PREFIX}bucket.{bucket}."
        keys.update({k[len(own):]: str(v) for k, v in conf.items() if k.startswith(own)})
    options: dict = {}
    for key, path in (("access.key", ["key"]), ("secret.key", ["secret"]),
                      ("session.token", ["token"]),
                      ("endpoint.region", ["client_kwargs", "region_name"])):
        if keys.get(key):
            _put(options, path, keys[key])
    ssl = _boolean(keys.get("connection.ssl.enabled", "true"), "fs.s3a.connection.ssl.enabled")
    if "connection.ssl.enabled" in keys:
        options["use_ssl"] = ssl
    endpoint = keys.get("endpoint", "").strip()
    if endpoint:
        if "://" not in endpoint:  # as s3a: the scheme follows connection.ssl.enabled
            endpoint = ("https://" if ssl else "http://") + endpoint
        _put(options, ["client_kwargs", "endpoint_url"], endpoint)
    if "path.style.access" in keys:
        style = "path" if _boolean(keys["path.style.access"], "fs.s3a.path.style.access") else "auto"
        _put(options, ["config_kwargs", "s3", "addressing_style"], style)
    if "requester.pays.enabled" in keys:
        options["requester_pays"] = _boolean(keys["requester.pays.enabled"],
                                             "fs.s3a.requester.pays.enabled")
    algorithm = keys.get("encryption.algorithm") or keys.get("server-side-encryption-algorithm")
    if algorithm:
        _put(options, ["s3_additional_kwargs", "ServerSideEncryption"],
             _SSE_ALGORITHMS.get(algorithm.upper(), algorithm))
    kms_key = keys.get("encryption.key") or keys.get("server-side-encryption.key")
    if kms_key:
        _put(options, ["s3_additional_kwargs", "SSEKMSKeyId"], kms_key)
    if _ANONYMOUS in keys.get("aws.credentials.provider", ""):
        options["anon"] = True
    return options


def _boolean(value: str, key: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(f"spark.hadoop.{key} must be true or false, got {value!r}")


def _option_value(value: Any) -> Any:
    """A configured option's value: JSON where it reads as a number, bool, null, list or
    object (``10``, ``true``, ``{"a": 1}``), else the string itself (``"\\"10\\""`` is the
    string 10)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _put(options: dict, path: list[str], value: Any) -> None:
    for key in path[:-1]:
        inner = options.get(key)
        if not isinstance(inner, dict):
            inner = options[key] = {}
        options = inner
    options[path[-1]] = value


# -- remote file systems ---------------------------------------------------------------------

class Remote:
    """One URL opened with fsspec: its file system, its path there, and how to turn
    paths of that file system back into URLs of the scheme the application wrote."""

    def __init__(self, url: str):
        self.url = url
        self.scheme = scheme(url) or ""
        canonical = SCHEME_ALIASES.get(self.scheme, self.scheme)
        try:
            import fsspec.core
        except ImportError:
            raise StorageError(
                f"{url}: sluicegate reads and writes {self.scheme}:// URLs with fsspec, which is "
                f"not installed: pip install '{EXTRA}'") from None
        rest = url[url.index("://") + 3:]
        bucket = rest.split("/", 1)[0] if canonical == "s3" else ""
        try:
            self.fs, self.path = fsspec.core.url_to_fs(
                canonical + "://" + rest, **storage_options(self.scheme, bucket))
        except ImportError as exc:
            raise StorageError(
                f"{url}: fsspec needs a backend for {self.scheme}:// that is not installed "
                f"({exc}); pip install '{EXTRA}' brings s3fs for s3://, s3a:// and s3n://"
            ) from None
        except ValueError as exc:
            if "protocol" in str(exc).lower():
                raise StorageError(f"{url}: fsspec knows no file system for "
                                   f"{self.scheme}:// ({exc})") from None
            raise
        self.path = self.path.rstrip("/") or self.path
        plain = _strip_slash(url)
        self._prefix = (plain[:-len(self.path)] if self.path and plain.endswith(self.path)
                        else self.scheme + "://")
        self.object_store = self.scheme in OBJECT_STORES

    def to_url(self, path: str) -> str:
        """The URL of ``path``, a path of this file system (as ``ls`` gives it)."""
        return self._prefix + path.rstrip("/")

    def fresh(self) -> "Remote":
        """Drop cached listings: another process may have changed the store since."""
        try:
            self.fs.invalidate_cache()
        except Exception:  # noqa: BLE001 - a file system without a cache
            pass
        return self


def remote(url: str) -> Remote:
    return Remote(os.fspath(url)).fresh()


# -- reading ---------------------------------------------------------------------------------

def open_input(path: str) -> BinaryIO:
    """``path`` opened for reading, in binary."""
    if not is_remote(path):
        return open(local_path(path), "rb")
    r = remote(path)
    try:
        return r.fs.open(r.path, "rb", block_size=READ_BLOCK_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(f"File {path} does not exist") from None


def read_bytes(path: str | os.PathLike) -> bytes:
    if not is_remote(path):
        return Path(local_path(path)).read_bytes()
    r = remote(os.fspath(path))
    try:
        return r.fs.cat_file(r.path)
    except FileNotFoundError:
        raise FileNotFoundError(f"File {os.fspath(path)} does not exist") from None


def exists(path: str | os.PathLike) -> bool:
    if not is_remote(path):
        return os.path.exists(local_path(path))
    r = remote(os.fspath(path))
    return bool(r.fs.exists(r.path))


def can_watch(directory: str) -> bool:
    """Whether a file stream can watch ``directory``: a local directory that exists; on an
    object store, any prefix of a bucket that exists (prefixes exist only while objects
    do, and a stream usually starts on an empty one)."""
    if not is_remote(directory):
        return os.path.isdir(local_path(directory))
    r = remote(directory)
    if r.fs.isdir(r.path):
        return True
    if not r.object_store:
        return False
    bucket = r.path.split("/", 1)[0]  # ("" on a file system rooted at "/": the root)
    return bool(r.fs.exists(bucket or "/"))


def list_directory(directory: str) -> list[tuple[str, str, int, str]]:
    """``(name, url, size, signature)`` of the files directly in a remote ``directory``;
    names starting with ``.`` or ``_`` are left out (Hadoop's hidden files). The signature
    changes whenever the file does (size and ETag, or modification time)."""
    r = remote(directory)
    try:
        entries = r.fs.ls(r.path, detail=True)
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        name = entry["name"].rstrip("/").rpartition("/")[2]
        if entry.get("type") != "file" or name.startswith((".", "_")):
            continue
        stamp = next((entry[k] for k in ("ETag", "etag", "md5Hash", "LastModified", "mtime",
                                         "updated", "created") if entry.get(k) is not None), "")
        found.append((name, r.to_url(entry["name"]), int(entry.get("size") or 0), str(stamp)))
    return sorted(found)


def list_names(directory: str | os.PathLike) -> list[tuple[str, bool]]:
    """``(name, is_directory)`` of what is directly in ``directory`` (none if it is absent)."""
    if not is_remote(directory):
        try:
            return sorted((e.name, e.is_dir()) for e in os.scandir(local_path(directory)))
        except (FileNotFoundError, NotADirectoryError):
            return []
    r = remote(os.fspath(directory))
    try:
        entries = r.fs.ls(r.path, detail=True)
    except FileNotFoundError:
        return []
    return sorted((e["name"].rstrip("/").rpartition("/")[2], e.get("type") == "directory")
                  for e in entries if e["name"].rstrip("/") != r.path)


def expand_input(part: str) -> list[tuple[str, int]]:
    """``(url, size)`` of the files a remote input path names: a file, a directory (its
    files, not those in subdirectories, nor hidden ones), or a glob of them."""
    r = remote(part)
    if glob.has_magic(r.path):
        matches = sorted(r.fs.glob(r.path, detail=True).items())
        if not matches:
            raise FileNotFoundError(f"Input path does not exist: {part}")
    else:
        try:
            matches = [(r.path, r.fs.info(r.path))]
        except FileNotFoundError:
            raise FileNotFoundError(f"Input path does not exist: {part}") from None
    found: list[tuple[str, int]] = []
    for name, info in matches:
        if info.get("type") == "directory":
            found.extend((url, size) for _, url, size, _ in list_directory(r.to_url(name)))
        else:
            found.append((r.to_url(name), int(info.get("size") or 0)))
    return found


# -- writing ---------------------------------------------------------------------------------

class _Spool(io.RawIOBase):
    """Where a remote file is written before it is uploaded whole: memory up to
    ``SPOOL_BYTES``, then a local temporary file."""

    def __init__(self):
        super().__init__()
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: Any = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._memory is not None and \
                self._memory.tell() + memoryview(data).nbytes > SPOOL_BYTES:
            self._file = tempfile.NamedTemporaryFile(prefix="sluicegate-upload-", delete=False)
            self._file.write(self._memory.getbuffer())
            self._memory = None
        return (self._memory if self._memory is not None else self._file).write(data)

    def tell(self) -> int:
        return (self._memory if self._memory is not None else self._file).tell()

    def upload(self, fs: Any, path: str) -> None:
        if self._memory is not None:
            fs.pipe_file(path, self._memory.getvalue())
            return
        self._file.close()
        try:
            fs.put_file(self._file.name, path)
        finally:
            os.unlink(self._file.name)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            os.unlink(self._file.name)
        self._memory = None


def write_file(path: str, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``path`` with ``write(file)`` so that no reader ever sees part of it."""
    if not is_remote(path):
        target = Path(local_path(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{random.getrandbits(48):x}.tmp")
        try:
            with open(tmp, "wb") as f:
                write(f)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return
    spool = _Spool()
    try:
        write(spool)  # type: ignore[arg-type]
    except BaseException:
        spool.discard()
        raise
    r = remote(path)
    if r.object_store:  # an upload appears whole when it completes
        spool.upload(r.fs, r.path)
        return
    folder, _, name = r.path.rpartition("/")
    tmp = f"{folder}/.{name}.{random.getrandbits(48):x}.tmp"
    r.fs.makedirs(folder, exist_ok=True)
    spool.upload(r.fs, tmp)
    r.fs.mv(tmp, r.path)


def write_bytes(path: str, data: bytes) -> None:
    """``write_file`` of bytes already in memory."""
    write_file(path, lambda f: f.write(data))


def makedirs(path: str | os.PathLike) -> None:
    """Create a directory (object stores have none: nothing to do there)."""
    if not is_remote(path):
        Path(local_path(path)).mkdir(parents=True, exist_ok=True)
        return
    r = remote(os.fspath(path))
    if not r.object_store:
        r.fs.makedirs(r.path, exist_ok=True)


def remove_files(paths: Iterable[str]) -> None:
    """Delete files, in one request per file system where it can; missing ones are fine."""
    paths = list(paths)
    local = [p for p in paths if not is_remote(p)]
    for path in local:
        Path(local_path(path)).unlink(missing_ok=True)
    remote_paths = [p for p in paths if is_remote(p)]
    if not remote_paths:
        return
    r = remote(remote_paths[0])
    names = [Remote(p).path for p in remote_paths]
    try:
        r.fs.rm(names)
    except FileNotFoundError:  # some were gone already: the rest one by one
        for name in names:
            try:
                r.fs.rm_file(name)
            except FileNotFoundError:
                pass


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a directory and everything in it, if it is there (``rmtree``, errors ignored:
    what is left is debris a later clean-up removes)."""
    if not is_remote(path):
        shutil.rmtree(local_path(path), ignore_errors=True)
        return
    try:
        r = remote(os.fspath(path))
        found = r.fs.find(r.path)
        if found:
            r.fs.rm(found)
        if not r.object_store and r.fs.exists(r.path):
            r.fs.rm(r.path, recursive=True)
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - as rmtree(ignore_errors=True): log, go on
        log.warning("could not delete %s: %s: %s", os.fspath(path), type(exc).__name__, exc)


# -- committing a directory of parts on a remote file system ----------------------------------

def staging_directory(target: str) -> str:
    """Where one attempt to save ``target`` writes its parts: ``target/_temporary/<id>``
    (Hadoop's place; readers skip names starting with ``_``)."""
    return join(join(target, STAGING), uuid.uuid4().hex)


def commit_directory(staging: str, target: str, replace: bool) -> None:
    """Make the parts staged in ``staging`` (see ``staging_directory``) ``target``'s content.

    Without a rename the parts are copied, the staging area is deleted, and ``_SUCCESS``
    is written last: a directory without it is incomplete, as for Hadoop's committers,
    and one with it holds its parts and nothing else. With ``replace`` (a batch run again
    after recovery) what ``target`` held before goes first -- its ``_SUCCESS`` before
    anything else, so nobody takes a half-replaced directory for a complete one --
    including what killed attempts staged.
    """
    r = remote(target)
    stage = Remote(staging).path
    staged = sorted(r.fs.find(stage))
    if replace:
        old = [p for p in r.fs.find(r.path) if not p.startswith(stage + "/")]
        marker = f"{r.path}/{SUCCESS}"
        if marker in old:
            r.fs.rm([marker])
        rest = [p for p in old if p != marker]
        if rest:
            r.fs.rm(rest)
    if staged:
        r.fs.copy(staged, [f"{r.path}/{p[len(stage) + 1:]}" for p in staged])
    remove_tree(join(target, STAGING))
    r.fs.pipe_file(f"{r.path}/{SUCCESS}", b"")
