"""A local TCP text server for the benchmarks (run as its own process).

``python -m bench.text_server --rate 50000`` prints ``PORT <n>``, then sends
the shared Zipf lines to one client at a fixed rate in lines/s (0: as fast
as the client reads), and prints ``SENT <lines>`` when the client goes.
"""
from __future__ import annotations

import argparse
import socket
import sys
import time

from .datagen import line_chunks

CHUNK_LINES = 500


def serve(rate: int, pool_lines: int) -> None:
    chunks = line_chunks(pool_lines, CHUNK_LINES)
    server = socket.create_server(("127.0.0.1", 0))
    print(f"PORT {server.getsockname()[1]}", flush=True)
    conn, _ = server.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    sent = 0
    index = 0
    start = time.monotonic()
    try:
        while True:
            if rate > 0:
                due = (time.monotonic() - start) * rate
                if sent >= due:
                    time.sleep(min(0.005, (sent - due) / rate + 0.0005))
                    continue
            conn.sendall(chunks[index % len(chunks)])
            sent += CHUNK_LINES
            index += 1
    except OSError:
        pass
    finally:
        print(f"SENT {sent}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=0, help="lines per second (0: unlimited)")
    parser.add_argument("--pool", type=int, default=200_000, help="distinct lines to cycle through")
    args = parser.parse_args()
    serve(args.rate, args.pool)


if __name__ == "__main__":
    main()
    sys.exit(0)
