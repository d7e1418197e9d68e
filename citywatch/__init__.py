"""citywatch: citywatch."""
