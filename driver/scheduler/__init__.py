"""DAG -> stages (cut at shuffles) -> tasks; retries; placement. No sockets here."""
