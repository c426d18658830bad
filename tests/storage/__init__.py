"""Storage tests: the event log backends, snapshots, durable updates, recovery, crashes."""
