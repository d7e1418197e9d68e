"""citywatch: api."""
