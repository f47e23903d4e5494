"""The quick-start demo: a streaming word count in local mode.

Starts a small local text server (the built-in source) that sends lines of
the bundled text, counts words per 1-second batch on three executor
processes, prints each batch, and stops by itself after a few seconds.
"""
import logging
import socket
import threading
import time
from operator import add
from pathlib import Path

from sluicegate.driver import SparkConf, SparkContext, StreamingContext

TEXT = (Path(__file__).parent / "data" / "two_cities.txt").read_text().splitlines()
SECONDS = 6


def serve_text(server: socket.socket, stop: threading.Event) -> None:
    """Send the text, a line every few milliseconds, to whoever connects."""
    server.settimeout(0.5)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        with conn:
            i = 0
            while not stop.is_set():
                try:
                    conn.sendall((TEXT[i % len(TEXT)] + "\n").encode())
                except OSError:
                    break
                i += 1
                time.sleep(0.005)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    threading.Thread(target=serve_text, args=(server, stop), daemon=True).start()

    sc = SparkContext(conf=SparkConf().setMaster("local[3]").setAppName("StreamingWordCountDemo"))
    ssc = StreamingContext(sc, 1)
    lines = ssc.socketTextStream("127.0.0.1", server.getsockname()[1])
    counts = (lines.flatMap(lambda line: line.lower().replace(",", " ").split())
              .map(lambda word: (word, 1))
              .reduceByKey(add)
              .transform(lambda rdd: rdd.sortBy(lambda kv: -kv[1])))
    counts.pprint(5)

    ssc.start()
    ssc.awaitTerminationOrTimeout(SECONDS)
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    stop.set()
    server.close()
