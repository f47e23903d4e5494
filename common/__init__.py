"""What the driver and the workers must agree on: the wire protocol,
serialization, the partition hash, authentication and configuration.

This package imports neither ``sluicegate.driver`` nor ``sluicegate.worker``.
"""
