"""Messages that change how many executors a running job has (codes 180-189).

* ``RequestExecutors``: a job's driver asks the service for a new total
  (streaming dynamic allocation): the service gives it up to that many
  executors, within its fair share of the cluster and its ``--cores``.
* ``ExecutorTarget``: the service tells a job's driver to run at most
  ``total`` executors (after ``sluicegate rebalance`` lowered its cores): the
  driver drains the excess -- no new tasks, their blocks still served until
  the next batches took their place -- and stops them.
* ``RebalanceJob``: ``sluicegate rebalance JOB --cores N`` (answered with a
  ``CommandResult``).

(``submit --supervise`` is a field of ``SubmitJob``.)
"""
from __future__ import annotations

from .records import WireRecord, wire_record


@wire_record(180)
class RequestExecutors(WireRecord):
    job_id: str
    total: int


@wire_record(181)
class ExecutorTarget(WireRecord):
    job_id: str
    total: int
    reason: str


@wire_record(182)
class RebalanceJob(WireRecord):
    job_id: str
    cores: int
