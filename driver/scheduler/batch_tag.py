"""Which streaming batch and output operation a job belongs to, as its properties say.

Spark's JobScheduler runs each output job with local properties on its
thread: the batch time and the output operation's id, under Spark's key
names, and the output operation's call site. They travel with every job the
thread starts (``Job.properties``, ``TaskContext.getLocalProperty``), and the
status store files the job under its batch from them (``BatchTag.of``).
"""
from __future__ import annotations

from dataclasses import dataclass

BATCH_TIME_KEY = "spark.streaming.internal.batchTime"  # epoch ms, as Spark's
OUTPUT_OP_ID_KEY = "spark.streaming.internal.outputOpId"
CALL_SITE_KEY = "callSite.short"  # Spark's short call site: here the output operation's
BATCH_KEYS = (BATCH_TIME_KEY, OUTPUT_OP_ID_KEY, CALL_SITE_KEY)


@dataclass(frozen=True, slots=True)
class BatchTag:
    """A job's streaming batch (epoch ms), output operation id and description."""

    batch_ms: int
    output_id: int
    output: str | None = None

    @classmethod
    def of(cls, properties: dict[str, str] | None) -> "BatchTag | None":
        """The tag in a job's properties; None for a job outside a streaming batch."""
        if not properties:
            return None
        batch_ms = properties.get(BATCH_TIME_KEY)
        output_id = properties.get(OUTPUT_OP_ID_KEY)
        if batch_ms is None or output_id is None:
            return None
        return cls(int(batch_ms), int(output_id), properties.get(CALL_SITE_KEY))
