"""The executor: runs tasks (deserialise closure, cached by id; iterate the partition)."""
