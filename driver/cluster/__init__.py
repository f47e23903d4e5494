"""The driver's event loop, its executors (registry, heartbeats, slots) and local mode."""
