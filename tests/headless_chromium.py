"""Debian's chromium, headless, as the browser tier's page renderer: ``CHROMIUM`` is
its binary (None where none is installed), ``chromium()`` runs it with a fresh
profile, ``dump_dom`` returns the DOM after load, optionally with every fetch
beyond this machine refused.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile


def find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = find_chromium()


def chromium(*args: str, timeout_s: float = 90.0) -> subprocess.CompletedProcess:
    """Run headless chromium with a fresh profile; everything it started is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="sluicegate-chromium-") as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                   "--disable-sync", f"--user-data-dir={profile}", *args]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"chromium timed out after {timeout_s:.0f}s: {err[-2000:]!r}")
        finally:
            try:  # its helpers (zygote, crashpad...) share its process group
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return subprocess.CompletedProcess(command, proc.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))


@contextlib.contextmanager
def dead_proxy():
    """A loopback port that refuses connections (bound, never listening), held
    while in use: as a proxy, it makes every fetch beyond this machine fail
    (chromium never sends loopback addresses through a proxy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def dump_dom(url: str, offline: bool = False) -> str:
    with dead_proxy() as proxy:
        done = chromium(*([f"--proxy-server={proxy}"] if offline else []), "--dump-dom", url)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("</html>"), done.stdout[-500:]
    return done.stdout
