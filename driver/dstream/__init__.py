"""The DStream graph: compute(time) -> RDD, inputs, outputs, windows, state."""
from .base import DStream

__all__ = ["DStream"]
