"""The archive: storage backends, the SQL index, the one ingest function, the arrival outbox."""
