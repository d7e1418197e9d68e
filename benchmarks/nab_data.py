"""Loading a Numenta Anomaly Benchmark (NAB) folder: series, windows, profiles, results.

The folder has NAB's layout (a ``git clone https://github.com/numenta/NAB`` works):
``data/<category>/<name>.csv``, ``labels/combined_windows.json``,
``config/profiles.json``, ``config/thresholds.json`` and
``results/<detector>/<category>/<detector>_<name>.csv``. The default is
``../shared/bench-data/nab`` next to the repository, when present.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.nab import CostMatrix, Profile, Window

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "bench-data" / "nab"
WINDOWS_FILE = Path("labels") / "combined_windows.json"
PROFILES_FILE = Path("config") / "profiles.json"
THRESHOLDS_FILE = Path("config") / "thresholds.json"
RESULTS_DIR = Path("results")

_HOW_TO_GET_NAB = "get NAB with `git clone https://github.com/numenta/NAB` and pass --data PATH/NAB"


class NABDataError(FileNotFoundError):
    """The NAB folder (or a file it should hold) is missing."""


@dataclass(frozen=True, slots=True)
class Series:
    """One CSV of NAB: ``timestamp,value`` (results add ``anomaly_score``)."""

    timestamps: npt.NDArray[np.datetime64]
    values: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """A stored detector output for one data file."""

    detector: str
    relpath: str
    timestamps: npt.NDArray[np.datetime64]
    anomaly_scores: npt.NDArray[np.float64]


def data_dir(path: str | Path | None = None) -> Path:
    """The NAB folder to use: ``path``, else the default; error if it is not a NAB folder."""
    folder = Path(path) if path is not None else DEFAULT_DATA_DIR
    if not folder.is_dir():
        where = f"{folder}" if path is not None else f"default {folder}"
        raise NABDataError(f"no NAB data folder at {where}; {_HOW_TO_GET_NAB}")
    for needed in (Path("data"), WINDOWS_FILE, PROFILES_FILE):
        if not (folder / needed).exists():
            raise NABDataError(f"{folder} lacks {needed}, not a NAB folder; {_HOW_TO_GET_NAB}")
    return folder


def parse_timestamps(texts: list[str]) -> npt.NDArray[np.datetime64]:
    """NAB timestamps (``2014-04-10 07:15:00[.000000]``) as ``datetime64[us]``."""
    return np.array(texts, dtype="datetime64[us]")


def _read_csv(path: Path, columns: tuple[str, ...]) -> dict[str, list[str]]:
    if not path.is_file():
        raise NABDataError(f"missing {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks column(s) {sorted(missing)}")
        out: dict[str, list[str]] = {c: [] for c in columns}
        for row in reader:
            for c in columns:
                out[c].append(row[c])
    return out


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise NABDataError(f"missing {path}")
    with path.open() as f:
        return json.load(f)


def load_series(folder: Path, relpath: str) -> Series:
    """``data/<relpath>``, e.g. ``realTweets/Twitter_volume_AAPL.csv``."""
    cols = _read_csv(folder / "data" / relpath, ("timestamp", "value"))
    return Series(
        timestamps=parse_timestamps(cols["timestamp"]),
        values=np.array(cols["value"], dtype=np.float64),
    )


def load_windows(folder: Path) -> dict[str, list[Window]]:
    """``labels/combined_windows.json``: data file -> its windows, in file order."""
    raw: Mapping[str, list[list[str]]] = _load_json(folder / WINDOWS_FILE)
    windows: dict[str, list[Window]] = {}
    for relpath, pairs in raw.items():
        limits = parse_timestamps([t for pair in pairs for t in pair])
        windows[relpath] = [Window(limits[2 * i], limits[2 * i + 1]) for i in range(len(pairs))]
    return windows


def load_profiles(folder: Path) -> dict[str, Profile]:
    """``config/profiles.json`` as ``Profile`` objects."""
    raw: Mapping[str, Mapping[str, Mapping[str, float]]] = _load_json(folder / PROFILES_FILE)
    return {name: Profile(name, CostMatrix.from_nab(p["CostMatrix"])) for name, p in raw.items()}


def load_thresholds(folder: Path) -> dict[str, dict[str, float]]:
    """``config/thresholds.json``: detector -> profile -> threshold."""
    raw: Mapping[str, Mapping[str, Mapping[str, float]]] = _load_json(folder / THRESHOLDS_FILE)
    return {
        det: {prof: float(entry["threshold"]) for prof, entry in profs.items()}
        for det, profs in raw.items()
    }


def detectors(folder: Path) -> list[str]:
    """Detectors with stored outputs under ``results/``."""
    results = folder / RESULTS_DIR
    if not results.is_dir():
        return []
    return sorted(p.name for p in results.iterdir() if p.is_dir())


def result_path(folder: Path, detector: str, relpath: str) -> Path:
    """``results/<detector>/<category>/<detector>_<name>.csv`` of a data file."""
    category, name = relpath.split("/", 1)
    return folder / RESULTS_DIR / detector / category / f"{detector}_{name}"


def load_result(folder: Path, detector: str, relpath: str) -> DetectorResult:
    """A stored detector output (its ``anomaly_score`` column) for data file ``relpath``."""
    cols = _read_csv(result_path(folder, detector, relpath), ("timestamp", "anomaly_score"))
    return DetectorResult(
        detector=detector,
        relpath=relpath,
        timestamps=parse_timestamps(cols["timestamp"]),
        anomaly_scores=np.array(cols["anomaly_score"], dtype=np.float64),
    )


@dataclass(frozen=True, slots=True)
class ReferenceScore:
    """A published normalised score, with the decimals it was rounded to (if known)."""

    normalised: float
    decimals: int | None
    raw: float | None = None
    raw_decimals: int | None = None
    windows: int | None = None
    windows_detected: int | None = None


def _decimals(value: Decimal) -> int | None:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) else None


def load_reference_scores(folder: Path) -> dict[str, dict[str, ReferenceScore]]:
    """Published scores: ``results/reference_scores.json`` (these files), else a NAB
    clone's ``results/final_results.json`` (detector -> profile -> score)."""
    for name in ("reference_scores.json", "final_results.json"):
        path = folder / RESULTS_DIR / name
        if path.is_file():
            with path.open() as f:
                raw = json.load(f, parse_float=Decimal)
            break
    else:
        raise NABDataError(
            f"no reference_scores.json or final_results.json in {folder / 'results'}"
        )
    out: dict[str, dict[str, ReferenceScore]] = {}
    for det, profs in raw.items():
        if det.startswith("_"):
            continue
        out[det] = {}
        for prof, entry in profs.items():
            if isinstance(entry, Mapping):
                value = Decimal(entry["normalized_score"])
                raw_score = entry.get("raw_score")
                windows = entry.get("windows")
                detected = entry.get("windows_detected")
                out[det][prof] = ReferenceScore(
                    normalised=float(value),
                    decimals=_decimals(value),
                    raw=None if raw_score is None else float(raw_score),
                    raw_decimals=None if raw_score is None else _decimals(Decimal(raw_score)),
                    windows=None if windows is None else int(windows),
                    windows_detected=None if detected is None else int(detected),
                )
            else:
                value = Decimal(entry)
                out[det][prof] = ReferenceScore(float(value), _decimals(value))
    return out
