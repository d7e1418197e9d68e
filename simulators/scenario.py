"""Scenario files: a named story of faults, in TOML or YAML, validated with clear errors.

```toml
name = "monsoon_evening"
description = "..."
duration = "2h"          # how long the story takes (the default --duration)

[[faults]]
kind = "flooding"
ward = "phuong_hoan_kiem"
at = "35m"               # offset from the simulation start
duration = "50m"
```

Every error names the file, the fault (by index and kind) and the field.
"""

import tomllib
from collections.abc import Collection
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulators.faults import Fault, Seconds

SCENARIO_SUFFIXES = (".toml", ".yaml", ".yml")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message says where and why."""


class Scenario(BaseModel):
    """A named list of faults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    duration: Seconds | None = None
    """How long the story takes; the default simulation length for it."""
    faults: list[Fault] = Field(default_factory=list)

    @field_validator("duration")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be positive (got {v:g} s)")
        return v


QUIET = Scenario(name="none")
"""No faults."""


def _format_errors(source: str, raw: Any, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "faults" and isinstance(loc[1], int):
            index = loc[1]
            kind = "?"
            if isinstance(raw, dict) and isinstance(raw.get("faults"), list):
                fault = raw["faults"][index]
                if isinstance(fault, dict):
                    kind = str(fault.get("kind", "?"))
            where = f"faults[{index}] ({kind})"
            rest = loc[2:]
            if rest and rest[0] == kind:  # pydantic puts the union tag into the path
                rest = rest[1:]
            if rest:
                where += "." + ".".join(str(p) for p in rest)
        else:
            where = ".".join(str(p) for p in loc) or "(top level)"
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)


def parse_scenario(text: str, source: str, wards: Collection[str] | None = None) -> Scenario:
    """Parse TOML (or YAML when ``source`` ends in .yaml/.yml) and validate it.

    ``wards`` are the known ward codenames; unknown wards are then errors.
    """
    try:
        raw = yaml.safe_load(text) if source.endswith((".yaml", ".yml")) else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        syntax = "YAML" if source.endswith((".yaml", ".yml")) else "TOML"
        raise ScenarioError(f"{source}: not valid {syntax}: {exc}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: expected a table of name, description, faults")
    try:
        return Scenario.model_validate(raw, context={"wards": wards})
    except ValidationError as exc:
        raise ScenarioError(_format_errors(source, raw, exc)) from None


def shipped_scenarios() -> list[str]:
    """Names of the scenarios that ship with citywatch."""
    folder = resources.files("simulators").joinpath("scenarios")
    return sorted(
        entry.name.rsplit(".", 1)[0]
        for entry in folder.iterdir()
        if entry.name.endswith(SCENARIO_SUFFIXES)
    )


def load_scenario(name_or_path: str | Path, wards: Collection[str] | None = None) -> Scenario:
    """Load a scenario file, or a shipped scenario by name (e.g. ``monsoon_evening``)."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"{path}: cannot read: {exc}") from None
        return parse_scenario(text, str(path), wards)
    folder = resources.files("simulators").joinpath("scenarios")
    for suffix in SCENARIO_SUFFIXES:
        entry = folder.joinpath(f"{name_or_path}{suffix}")
        if entry.is_file():
            return parse_scenario(
                entry.read_text(encoding="utf-8"), f"{name_or_path}{suffix}", wards
            )
    raise ScenarioError(
        f"{name_or_path}: no such file, and not a shipped scenario "
        f"(shipped: {', '.join(shipped_scenarios()) or 'none'})"
    )
