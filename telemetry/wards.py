"""Hanoi's wards and communes (the 2025 two-tier divisions): the city's catalogue.

Every package reads it from here: the simulator places its fleet with it, people read a
ward by its Vietnamese name (``Phường Định Công``) where topics and tags carry the
codename (``phuong_dinh_cong``), and the CLI refuses a ward it does not know.

The table ships as package data (``telemetry/data/hanoi_wards.json``): names and codes
from the ``vietnam-provinces`` package, approximate centroids, whether a ward is urban,
and the streets of the urban wards in their Vietnamese spelling.
"""

import difflib
from collections.abc import Sequence
from importlib import resources
from typing import Literal

import msgspec

from telemetry.topics import is_valid_id

# A generous box around Hanoi (Ba Vì in the west to Gia Lâm in the east).
HANOI_LAT = (20.5, 21.45)
HANOI_LON = (105.25, 106.05)


class Ward(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ward (phường) or commune (xã)."""

    code: int
    codename: str
    """ASCII codename used in topics and tags, e.g. ``phuong_hoan_kiem``."""
    name: str
    """Display name in Vietnamese, e.g. ``Phường Hoàn Kiếm``."""
    division: Literal["phuong", "xa"]
    lat: float
    lon: float
    urban: bool
    streets: list[str] = msgspec.field(default_factory=list)


class WardTable(msgspec.Struct, frozen=True):
    source: str
    province_code: int
    wards: list[Ward]


class WardDataError(ValueError):
    """The ward table is malformed."""


def validate_wards(wards: Sequence[Ward]) -> tuple[Ward, ...]:
    """Check ids, uniqueness and coordinates; return the wards as a tuple."""
    if not wards:
        raise WardDataError("the ward table is empty")
    seen: set[str] = set()
    for i, ward in enumerate(wards):
        where = f"wards[{i}] ({ward.codename!r})"
        if not is_valid_id(ward.codename):
            raise WardDataError(f"{where}: codename is not a valid id (a-z 0-9 _ -)")
        if ward.codename in seen:
            raise WardDataError(f"{where}: duplicate codename")
        seen.add(ward.codename)
        if not (HANOI_LAT[0] <= ward.lat <= HANOI_LAT[1]) or not (
            HANOI_LON[0] <= ward.lon <= HANOI_LON[1]
        ):
            raise WardDataError(f"{where}: ({ward.lat}, {ward.lon}) is not in Hanoi")
    return tuple(wards)


def parse_wards(data: bytes) -> tuple[Ward, ...]:
    """Decode and validate a ward table in the shipped JSON layout."""
    try:
        table = msgspec.json.decode(data, type=WardTable)
    except msgspec.DecodeError as exc:
        raise WardDataError(f"ward table: {exc}") from None
    return validate_wards(table.wards)


_cache: tuple[Ward, ...] | None = None


def load_wards() -> tuple[Ward, ...]:
    """The shipped Hanoi ward table (read once)."""
    global _cache  # noqa: PLW0603 - a read-only, load-once table
    if _cache is None:
        data = resources.files("telemetry").joinpath("data", "hanoi_wards.json").read_bytes()
        _cache = parse_wards(data)
    return _cache


def ward_names() -> dict[str, str]:
    """Codename → Vietnamese display name of every ward in the catalogue."""
    return {ward.codename: ward.name for ward in load_wards()}


def display_name(codename: str) -> str:
    """How a person reads a ward: its Vietnamese name, else the codename as given (a
    ward outside the catalogue, e.g. another city's)."""
    return ward_names().get(codename, codename)


def nearest_wards(codename: str, n: int = 3) -> list[str]:
    """Catalogue codenames closest in spelling to ``codename`` (a typo's suggestions)."""
    return difflib.get_close_matches(codename, [w.codename for w in load_wards()], n, 0.6)
