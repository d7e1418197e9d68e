"""citywatch: anomaly."""
