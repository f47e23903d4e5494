"""Watching an application: status store, status pages, REST API, metrics, live progress."""
