"""The streaming scheduler: what turns a DStream graph into batches and runs them.

Spark's ``streaming.scheduler`` in Python. ``JobScheduler`` (job_scheduler) owns
one event loop -- typed events (``events``): generate the jobs of a batch time,
a batch completed, clear old metadata, write a checkpoint -- and the parts it
drives: the batch timer and the ``JobGenerator`` (job_generator), the
``BatchRunner`` that runs each batch's output jobs in order (batch_runner), the
received-block tracker (block_tracker), flow control (flow_control,
rate_estimator, receiver_intake), streaming dynamic allocation
(allocation_manager), the metadata ``CheckpointWriter`` (checkpoint_writer) and
the listener bus (streaming_listener). ``StreamingContext`` is the user's
facade over it. The DAG scheduler (``driver.scheduler``) runs each job.
"""
