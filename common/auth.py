"""Shared-secret authentication and encryption of every connection (CURVE).

Every process of a cluster knows one secret. From it each derives the same
server key pair (every bound socket uses it) and the same client key pair
(every connecting socket uses it). A connecting peer must prove it holds the
client secret key, and the server proves it holds the server secret key, so a
peer without the secret never completes a handshake and nothing it sends is
ever read, let alone unpickled. Traffic is encrypted as a side effect.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from . import constants

log = logging.getLogger("sluicegate.auth")


class SecurityError(Exception):
    """A setting that would expose the cluster to unauthenticated peers."""


def _derive_keypair(secret: bytes, role: bytes) -> tuple[bytes, bytes]:
    raw = hashlib.blake2b(secret, digest_size=32, person=b"sluicegate-" + role[:5]).digest()
    secret_z85 = z85.encode(raw)
    return zmq.curve_public(secret_z85), secret_z85


@dataclass(frozen=True)
class ClusterKeys:
    """The CURVE key pairs every holder of the secret derives alike."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> "ClusterKeys":
        if len(secret) < 16:
            raise SecurityError("the shared secret must be at least 16 bytes long")
        server = _derive_keypair(secret, b"srv")
        client = _derive_keypair(secret, b"cli")
        return cls(server[0], server[1], client[0], client[1])


class _ClientKeyCheck:
    """ZAP callback: only the client key derived from our secret may connect."""

    def __init__(self, allowed_public: bytes):
        self._allowed = allowed_public

    def callback(self, domain: str, key: bytes) -> bool:
        ok = hmac.compare_digest(key, self._allowed)
        if not ok:
            log.warning("refused a connection: its key was not derived from the cluster secret")
        return ok


def start_authenticator(context: zmq.Context, keys: ClusterKeys):
    """Run the ZAP handler that checks every incoming CURVE handshake."""
    from zmq.auth.thread import ThreadAuthenticator

    authenticator = ThreadAuthenticator(context, log=logging.getLogger("sluicegate.auth.zap"))
    authenticator.start()
    authenticator.configure_curve_callback("*", _ClientKeyCheck(keys.client_public))
    return authenticator


def new_secret() -> bytes:
    """A fresh random secret (local mode makes one per SparkContext)."""
    return secrets.token_urlsafe(32).encode()


def read_secret_file(path: str | os.PathLike) -> bytes:
    """Read a secret file, refusing one that other users can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as exc:
        raise SecurityError(f"cannot read secret file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecurityError(f"secret file {path} is readable by other users; run: chmod 600 {path}")
    if not data:
        raise SecurityError(f"secret file {path} is empty")
    return data


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    if host in ("", "*"):  # every interface
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


def bearer_matches(authorization: str | None, secret: bytes | str | None) -> bool:
    """Whether an HTTP ``Authorization`` header is ``Bearer SECRET`` with the cluster's
    secret (compared in constant time); never true without a secret."""
    given = authorization or ""
    if not secret or not given.startswith("Bearer "):
        return False
    expected = secret if isinstance(secret, bytes) else str(secret).encode()
    return hmac.compare_digest(given[len("Bearer "):].strip().encode(), expected.strip())


def check_bind_allowed(host: str, secret: bytes | None) -> None:
    """Refuse to listen beyond loopback without a secret."""
    if secret is None and not is_loopback(host):
        raise SecurityError(
            f"refusing to listen on {host} without a shared secret: anyone who can reach it could "
            "run code in this cluster. Set one with --secret-file FILE (chmod 600) or the "
            "spark.authenticate.secret setting, or listen on 127.0.0.1.")


def default_secret_path() -> Path:
    """Where a single-host cluster keeps its secret when none is given."""
    return Path(os.environ.get(constants.ENV_HOME, Path.home() / ".sluicegate")) / "secret"


def load_or_create_default_secret() -> bytes:
    """The default secret file's secret, made (mode 600) on first use."""
    path = default_secret_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new_secret())
    return read_secret_file(path)


def resolve_secret(secret_file: str | None, host: str, create: bool) -> tuple[bytes, bool]:
    """The secret to use and whether it was given explicitly.

    An explicit ``secret_file`` wins. Otherwise the default file is used (and
    made, if ``create``) -- which only ever allows loopback, so a cluster
    spanning hosts always needs a secret chosen on purpose.
    """
    if secret_file:
        return read_secret_file(secret_file), True
    if create:
        check_bind_allowed(host, None)
    elif not is_loopback(host):
        raise SecurityError(
            f"{host} is not this machine: talking to a cluster across hosts needs its shared "
            "secret. Pass --secret-file FILE (the file the driver was started with).")
    if create:
        return load_or_create_default_secret(), False
    path = default_secret_path()
    if not path.exists():
        raise SecurityError(f"no --secret-file given and no default secret at {path}: start "
                            "`sluicegate driver` on this machine first, or pass --secret-file")
    return read_secret_file(path), False
