"""citywatch: alerts."""
