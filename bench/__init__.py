"""Side-by-side benchmarks: sluicegate and PySpark on the same workloads, same data, same run."""
