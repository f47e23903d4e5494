"""How a ``sluicegate`` command reaches the driver service: the ``--driver``
address, the shared secret, one connection, one request and its answer.

Kept apart from the parser (``cli``) so that each command's module imports
it without importing the others.
"""
from __future__ import annotations

import os
import socket

from sluicegate.common.constants import ENV_DRIVER

DEFAULT_DRIVER = os.environ.get(ENV_DRIVER, "127.0.0.1:7077")
REACH_TIMEOUT_S = 2.0  # an unreachable driver is reported within this (plus start-up)


class UsageError(Exception):
    """Bad input on the command line: one line saying what and where, exit status 2."""


def driver_host(address: str) -> str:
    """The host of a ``HOST:PORT`` address (an IPv6 address without its brackets)."""
    return address.rsplit(":", 1)[0].strip("[]")


def check_driver_address(address: str) -> tuple[str, int]:
    """``--driver HOST:PORT`` as host and port; ``UsageError`` saying what is wrong, or
    that the host name does not resolve (at once, rather than after a silent wait)."""
    host, colon, port = address.strip().rpartition(":")
    host = host.strip("[]")  # an IPv6 address in brackets
    if not colon or not host:
        raise UsageError(f"--driver {address!r} is not HOST:PORT (e.g. 127.0.0.1:7077)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--driver {address!r}: the port {port!r} is not a number from 1 to 65535")
    try:
        socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--driver {address!r}: the host name {host!r} does not resolve "
                         f"({exc.strerror})") from None
    return host, int(port)


def connect(args):
    """A ``ServiceClient`` to ``args.driver`` with the secret ``args.secret_file`` names;
    ``ServiceUnavailable`` at once if nothing answers there."""
    from sluicegate.common.auth import resolve_secret

    from .cluster.client import ServiceClient, check_reachable

    secret, _ = resolve_secret(args.secret_file, driver_host(args.driver), create=False)
    check_reachable(args.driver, REACH_TIMEOUT_S)
    return ServiceClient(args.driver, secret)


def ask(args, message):
    """One request to the service, one answer."""
    client = connect(args)
    try:
        return client.request(message)
    finally:
        client.close()
