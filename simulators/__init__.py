"""citywatch: simulators."""
