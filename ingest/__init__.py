"""citywatch: ingest."""
