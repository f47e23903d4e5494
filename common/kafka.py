"""What the driver and the executors share about Kafka.

* The client: ``confluent-kafka`` (librdkafka), an optional extra
  (``pip install sluicegate[kafka]``); ``client()`` imports it or says how to
  get it.
* The configuration: ``kafkaParams`` as PySpark 2.x users wrote them (the 0.8
  integration's ``metadata.broker.list``, ``auto.offset.reset=smallest``) or as
  the 0.10 integration takes them (``bootstrap.servers``, ``group.id``,
  ``security.protocol``, ``sasl.*``, ``ssl.*``, passed through to the client),
  turned into one client configuration (``normalize_params``).
* The records: ``KafkaMessageAndMetadata`` (what a ``messageHandler`` gets),
  the decoders, and the functions the driver puts into task plans
  (``DecodePair``, ``HandleMessage``, ``WriteToKafka``,
  ``WriteToKafkaInTransactions``), pickled by reference.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable

from .taskcontext import TaskContext

log = logging.getLogger("sluicegate.kafka")

# -- settings (Spark's names where Spark has one) ------------------------------------------

MAX_RATE_PER_PARTITION = "spark.streaming.kafka.maxRatePerPartition"
MIN_RATE_PER_PARTITION = "spark.streaming.kafka.minRatePerPartition"
POLL_TIMEOUT = "spark.streaming.kafka.consumer.poll.ms"
METADATA_TIMEOUT = "spark.sluicegate.kafka.metadataTimeout"
MAX_RECORDS_PER_PARTITION = "spark.sluicegate.kafka.maxRecordsPerPartition"
RETRY_BACKOFF = "spark.sluicegate.kafka.retryBackoff"
RETRY_BACKOFF_MAX = "spark.sluicegate.kafka.retryBackoffMax"

DEFAULT_POLL_TIMEOUT_MS = 60_000
DEFAULT_METADATA_TIMEOUT_S = 5.0
DEFAULT_RETRY_BACKOFF_S = 0.5
DEFAULT_RETRY_BACKOFF_MAX_S = 10.0

# StreamInputInfo.metadata() of a direct stream's batch: one dict per topic-partition
# (topic, partition, fromOffset, untilOffset, records, lag), for the status pages.
PARTITIONS_KEY = "kafkaPartitions"

# Keys of the JVM clients that mean nothing to librdkafka (classes, ZooKeeper): dropped.
JVM_ONLY_KEYS = frozenset({
    "key.deserializer", "value.deserializer", "key.serializer", "value.serializer",
    "zookeeper.connect", "zookeeper.connection.timeout.ms", "zookeeper.session.timeout.ms",
    "zookeeper.sync.time.ms", "serializer.class", "key.serializer.class",
})
_OLD_RESETS = {"smallest": "earliest", "largest": "latest"}
_RESETS = ("earliest", "latest", "none")


class KafkaConfigError(ValueError):
    """kafkaParams (or a Kafka setting) that cannot work."""


def client():
    """The ``confluent_kafka`` module, or an ImportError saying how to install it."""
    try:
        import confluent_kafka
        import confluent_kafka.admin  # noqa: F401 - client().admin.AdminClient
    except ImportError as exc:
        raise ImportError("Kafka support needs the confluent-kafka client: "
                          "pip install 'sluicegate[kafka]'") from exc
    return confluent_kafka


def normalize_params(params: Any, where: str = "kafkaParams") -> dict:
    """``params`` as a librdkafka configuration: old 0.8 names translated, JVM-only
    keys dropped, values as the client takes them. Raises KafkaConfigError naming the
    key for what cannot work."""
    if not isinstance(params, dict):
        raise TypeError(f"{where} should be dict, got {type(params).__name__}")
    config: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise KafkaConfigError(f"{where}: key {key!r} is not a string")
        if key in JVM_ONLY_KEYS:
            continue  # a Java class or ZooKeeper: this client decodes in Python, talks to brokers
        if value is None:
            raise KafkaConfigError(f"{where}: {key} has no value")
        if isinstance(value, bool) or isinstance(value, (int, float)):
            config[key] = value
        else:
            config[key] = str(value)
    brokers = config.pop("metadata.broker.list", None)
    if "bootstrap.servers" not in config and brokers is not None:
        config["bootstrap.servers"] = brokers
    if not config.get("bootstrap.servers"):
        raise KafkaConfigError(f"{where} must name the brokers: 'bootstrap.servers' (or the "
                               "0.8 name 'metadata.broker.list'), e.g. 'host1:9092,host2:9092'")
    reset = config.get("auto.offset.reset")
    if reset is not None:
        reset = _OLD_RESETS.get(str(reset).lower(), str(reset).lower())
        if reset not in _RESETS:
            raise KafkaConfigError(f"{where}: auto.offset.reset must be earliest (smallest), "
                                   f"latest (largest) or none, got {config['auto.offset.reset']!r}")
        config["auto.offset.reset"] = reset
    return config


def wants_auto_commit(config: dict) -> bool:
    value = config.get("enable.auto.commit", False)
    return value is True or str(value).strip().lower() == "true"


def consumer_config(config: dict, purpose: str) -> dict:
    """The configuration of a consumer that sluicegate drives by hand (assign + seek):
    it never commits on its own and never jumps to another offset on its own."""
    group = config.get("group.id")
    out = {k: v for k, v in config.items()
           if k not in ("enable.auto.commit", "auto.offset.reset", "group.id")}
    out["group.id"] = f"sluicegate-{purpose}-{group}" if purpose != "driver" and group else \
        (group or f"sluicegate-{purpose}")
    out["enable.auto.commit"] = False
    out["enable.auto.offset.store"] = False
    out["auto.offset.reset"] = "error"
    out["enable.partition.eof"] = False
    return out


def with_logger(config: dict) -> dict:
    """``config`` with librdkafka's log lines going to Python logging (not stderr), to
    the logger ``sluicegate.kafka.client``. Its lines repeat what sluicegate reports
    once (a broker that is down is retried every few milliseconds), so it is quiet
    unless its level was set: ``logging.getLogger("sluicegate.kafka.client")
    .setLevel(logging.INFO)`` shows them."""
    logger = logging.getLogger("sluicegate.kafka.client")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)
    return {**config, "logger": logger}


# -- records ---------------------------------------------------------------------------------

def utf8_decoder(s: bytes | None) -> str | None:
    """Decode bytes as UTF-8 (None stays None): the default key and value decoder."""
    if s is None:
        return None
    return s.decode("utf-8")


class KafkaMessageAndMetadata:
    """One Kafka record as a ``messageHandler`` sees it (PySpark's class, plus the
    0.10 fields): ``topic``, ``partition``, ``offset``, ``key`` and ``message``
    (decoded with the stream's decoders), ``timestamp`` (ms since the epoch, or
    None), ``timestampType`` (0 none, 1 create time, 2 log append time) and
    ``headers`` (a list of ``(name, bytes)``, or None)."""

    __slots__ = ("topic", "partition", "offset", "_rawKey", "_rawMessage", "timestamp",
                 "timestampType", "headers", "_keyDecoder", "_valueDecoder")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None,
                 message: bytes | None, timestamp: int | None = None,
                 timestampType: int | None = None, headers: list | None = None):
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self._rawKey = key
        self._rawMessage = message
        self.timestamp = timestamp
        self.timestampType = timestampType
        self.headers = headers
        self._keyDecoder = utf8_decoder
        self._valueDecoder = utf8_decoder

    def __reduce__(self):
        return (KafkaMessageAndMetadata, (self.topic, self.partition, self.offset, self._rawKey,
                                          self._rawMessage, self.timestamp, self.timestampType,
                                          self.headers))

    def _set_key_decoder(self, decoder: Callable) -> None:
        self._keyDecoder = decoder

    def _set_value_decoder(self, decoder: Callable) -> None:
        self._valueDecoder = decoder

    @property
    def key(self) -> Any:
        return self._keyDecoder(self._rawKey)

    @property
    def message(self) -> Any:
        return self._valueDecoder(self._rawMessage)

    value = message  # the 0.10 ConsumerRecord's name

    def __str__(self) -> str:
        return (f"KafkaMessageAndMetadata(topic: {self.topic}, partition: {self.partition}, "
                f"offset: {self.offset}, key and message...)")

    __repr__ = __str__


class DecodePair:
    """``(keyDecoder(key), valueDecoder(value))`` of a raw record pair."""

    def __init__(self, key_decoder: Callable, value_decoder: Callable):
        self.key_decoder = key_decoder
        self.value_decoder = value_decoder

    def __call__(self, pair: tuple) -> tuple:
        return self.key_decoder(pair[0]), self.value_decoder(pair[1])


class HandleMessage:
    """``messageHandler(m)`` with the stream's decoders set on ``m``."""

    def __init__(self, handler: Callable, key_decoder: Callable, value_decoder: Callable):
        self.handler = handler
        self.key_decoder = key_decoder
        self.value_decoder = value_decoder

    def __call__(self, message: KafkaMessageAndMetadata) -> Any:
        message._keyDecoder = self.key_decoder
        message._valueDecoder = self.value_decoder
        return self.handler(message)


# -- the sink (runs on executors) --------------------------------------------------------------

def producer_config(config: dict, transactional_id: str | None = None) -> dict:
    """An idempotent producer (acks=all, no duplicates from its own retries) unless the
    user turned idempotence off; consumer-only keys are left out."""
    consumer_only = ("group.id", "enable.auto.commit", "auto.offset.reset",
                     "enable.auto.offset.store", "enable.partition.eof", "isolation.level",
                     "session.timeout.ms", "max.poll.interval.ms", "fetch.wait.max.ms",
                     "fetch.min.bytes", "max.partition.fetch.bytes", "queued.min.messages",
                     "queued.max.messages.kbytes", "auto.commit.interval.ms")
    out = {k: v for k, v in config.items() if k not in consumer_only}
    out.setdefault("enable.idempotence", True)
    if transactional_id is not None:
        out["transactional.id"] = transactional_id
    if "transactional.id" in out:
        out["enable.idempotence"] = True  # what transactions are built on
        # librdkafka wants a record's delivery timeout within the transaction's.
        if "message.timeout.ms" in out:
            out.setdefault("transaction.timeout.ms", max(60_000, int(out["message.timeout.ms"])))
    return out


def _to_bytes(value: Any, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


_PRODUCERS: dict[tuple, Any] = {}
_PRODUCERS_LOCK = threading.Lock()


def _producer(config: dict):
    key = tuple(sorted((k, repr(v)) for k, v in config.items()))
    with _PRODUCERS_LOCK:
        producer = _PRODUCERS.get(key)
        if producer is None:
            producer = _PRODUCERS[key] = client().Producer(with_logger(config))
        return producer


def _drop_producer(config: dict, producer=None) -> None:
    """Forget the cached producer of ``config`` (if it is still ``producer``), dropping
    the records its queue still holds: they belong to a task that is failing."""
    key = tuple(sorted((k, repr(v)) for k, v in config.items()))
    with _PRODUCERS_LOCK:
        if producer is None or _PRODUCERS.get(key) is producer:
            _PRODUCERS.pop(key, None)
    if producer is not None:
        try:
            producer.purge()
        except Exception:  # noqa: BLE001 - a producer in a fatal state may refuse
            pass


class KafkaDeliveryError(RuntimeError):
    """Records a Kafka producer could not deliver (the task fails and is retried)."""


def _produce_all(producer, topic: str, records: Iterable, key_func: Callable | None,
                 value_func: Callable | None, delivered: Callable) -> int:
    """Queue every record on ``producer`` (``delivered`` hears of each delivery); how
    many were queued."""
    produce, poll = producer.produce, producer.poll
    sent = 0
    for record in records:
        value = _to_bytes(value_func(record) if value_func else record, "value")
        key = _to_bytes(key_func(record), "key") if key_func else None
        while True:
            try:
                produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                poll(0.05)
        sent += 1
        if sent % 1000 == 0:
            poll(0)
    return sent


class WriteToKafka:
    """A partition's records to ``topic``: each record's value is ``valueFunc(record)``
    (default: the record itself), its key ``keyFunc(record)`` (default: none); str
    values are UTF-8, bytes as they are, anything else ``str()``. Returns once every
    record is acknowledged by the brokers; a record that cannot be delivered within
    ``timeout_s`` fails the task (which the scheduler retries: at-least-once)."""

    def __init__(self, topic: str, config: dict, key_func: Callable | None,
                 value_func: Callable | None, timeout_s: float):
        self.topic = topic
        self.config = producer_config(config)
        self.key_func = key_func
        self.value_func = value_func
        self.timeout_s = timeout_s

    def __call__(self, records: Iterable) -> None:
        producer = _producer(self.config)
        failures: list = []

        def delivered(err, msg):
            if err is not None:
                failures.append(f"{err}")

        topic = self.topic
        sent = 0
        try:
            sent = _produce_all(producer, topic, records, self.key_func, self.value_func,
                                delivered)
            deadline = time.monotonic() + self.timeout_s
            left = producer.flush(self.timeout_s)
            while left and time.monotonic() < deadline:
                left = producer.flush(max(0.1, deadline - time.monotonic()))
        except client().KafkaException as exc:
            # E.g. the idempotent producer's fatal error after records timed out: it
            # refuses everything from then on, so the task's next attempt needs a new one.
            _drop_producer(self.config, producer)
            error = exc.args[0] if exc.args else exc
            raise KafkaDeliveryError(f"saveToKafka: records to topic {topic!r} were not "
                                     f"delivered: {error.str() if hasattr(error, 'str') else error}"
                                     ) from None
        if left or failures:
            _drop_producer(self.config, producer)  # start clean: no queue, no fatal state
            raise KafkaDeliveryError(
                f"saveToKafka: {len(failures) + left} of {sent} records to topic {topic!r} were "
                f"not delivered within {self.timeout_s:g}s"
                + (f": {failures[0]}" if failures else " (brokers unreachable?)"))


class WriteToKafkaInTransactions:
    """Exactly-once writing of one batch's partitions (``saveToKafka(...,
    transactional=True)``), for readers with ``isolation.level=read_committed``.

    Partition ``i`` of the batch at ``batch_ms`` is written in one Kafka
    transaction by a producer whose ``transactional.id`` is ``{prefix}-p{i}``, the
    same for every attempt at that partition, in this batch and in later ones:

    * ``init_transactions`` fences every earlier producer with that id (a task
      attempt on an executor that was killed or lost, a batch run before a driver
      crash) and ends its open transaction, which the broker aborts, before this
      attempt writes anything;
    * the transaction also commits, for consumer group ``{prefix}-p{i}``, the offset
      ``batch_ms + 1`` of the sink topic's partition 0: a marker that says partition
      ``i`` of every batch up to ``batch_ms`` is in the topic. It becomes visible
      with the records, atomically. A batch re-run after a driver crash finds its
      marker and writes nothing for the partitions it had committed.

    Batches must reach the sink in time order (one at a time: the stream's
    ``spark.streaming.concurrentJobs`` is 1), and a re-run batch must hold the same
    records in each partition (the direct Kafka stream's batches do: their offset
    ranges are checkpointed). Empty partitions start no transaction."""

    def __init__(self, topic: str, config: dict, key_func: Callable | None,
                 value_func: Callable | None, timeout_s: float, prefix: str,
                 batch_ms: int | None = None):
        self.topic = topic
        self.config = {k: v for k, v in config.items() if k != "transactional.id"}
        self.key_func = key_func
        self.value_func = value_func
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.batch_ms = batch_ms

    def at(self, batch_ms: int) -> "WriteToKafkaInTransactions":
        """This writer for the batch at ``batch_ms``."""
        return WriteToKafkaInTransactions(self.topic, self.config, self.key_func,
                                          self.value_func, self.timeout_s, self.prefix,
                                          batch_ms)

    def _marker_consumer(self, group: str):
        config = consumer_config(self.config, "marker")
        config.update({"group.id": group, "isolation.level": "read_committed"})
        return client().Consumer(with_logger(config))

    def __call__(self, records: Iterable) -> None:
        if self.batch_ms is None:
            raise RuntimeError("WriteToKafkaInTransactions needs a batch: use .at(batch_ms)")
        iterator = iter(records)
        first = next(iterator, _NOTHING)
        if first is _NOTHING:
            return
        ck = client()
        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        transactional_id = f"{self.prefix}-p{partition}"
        marker = self.batch_ms + 1
        where = (f"saveToKafka (transactional.id {transactional_id}, batch {self.batch_ms}, "
                 f"topic {self.topic!r})")
        producer = ck.Producer(with_logger(producer_config(self.config, transactional_id)))
        looker = self._marker_consumer(transactional_id)
        failures: list = []
        began = False

        def delivered(err, msg):
            if err is not None:
                failures.append(f"{err}")

        try:
            producer.init_transactions(self.timeout_s)
            done = looker.committed([ck.TopicPartition(self.topic, 0)], timeout=self.timeout_s)[0]
            if done.error is None and done.offset >= marker:
                log.info("%s: already committed (marker %d), nothing to write", where, done.offset)
                return
            producer.begin_transaction()
            began = True
            sent = _produce_all(producer, self.topic, _chain_first(first, iterator),
                                self.key_func, self.value_func, delivered)
            left = producer.flush(self.timeout_s)
            if left or failures:
                raise KafkaDeliveryError(
                    f"{where}: {len(failures) + left} of {sent} records were not delivered "
                    f"within {self.timeout_s:g}s" + (f": {failures[0]}" if failures else ""))
            producer.send_offsets_to_transaction(
                [ck.TopicPartition(self.topic, 0, marker)], looker.consumer_group_metadata(),
                self.timeout_s)
            producer.commit_transaction(self.timeout_s)
            began = False
        except ck.KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            text = error.str() if hasattr(error, "str") else str(error)
            raise KafkaDeliveryError(f"{where}: {text}") from None
        finally:
            if began:
                try:
                    producer.abort_transaction(min(self.timeout_s, 10.0))
                except Exception:  # noqa: BLE001 - fenced or broker gone: the next attempt fences it
                    pass
            looker.close()


_NOTHING = object()


def _chain_first(first: Any, rest: Iterable) -> Iterable:
    yield first
    yield from rest

