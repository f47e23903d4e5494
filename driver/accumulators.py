"""Mirrors ``pyspark.accumulators``."""
from sluicegate.common.accumulators import (
    COMPLEX_ACCUMULATOR_PARAM,
    FLOAT_ACCUMULATOR_PARAM,
    INT_ACCUMULATOR_PARAM,
    Accumulator,
    AccumulatorParam,
    AddingAccumulatorParam,
)

__all__ = ["Accumulator", "AccumulatorParam", "AddingAccumulatorParam", "INT_ACCUMULATOR_PARAM",
           "FLOAT_ACCUMULATOR_PARAM", "COMPLEX_ACCUMULATOR_PARAM"]
