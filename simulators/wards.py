"""The ward catalogue the simulator places its fleet with: ``telemetry.wards`` (kept here
as an import path)."""

from telemetry.wards import (
    HANOI_LAT,
    HANOI_LON,
    Ward,
    WardDataError,
    WardTable,
    load_wards,
    parse_wards,
    validate_wards,
)

__all__ = [
    "HANOI_LAT",
    "HANOI_LON",
    "Ward",
    "WardDataError",
    "WardTable",
    "load_wards",
    "parse_wards",
    "validate_wards",
]
