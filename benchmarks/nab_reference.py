"""Reproduce the published NAB scores of the stored detector outputs.

Scores every detector under ``results/`` at its ``config/thresholds.json`` threshold,
for every profile, over every labelled file, normalises as NAB does, and compares with
``results/reference_scores.json`` (or a NAB clone's ``results/final_results.json``).
Exits 1 if a score differs by more than the reference's rounding (half a unit of its
last decimal), 2 if the data cannot be found.

    python benchmarks/nab_reference.py [--data PATH/NAB] [--files]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.nab import CorpusScore, FileScore, Profile, Window, normalise, score_file
from benchmarks.nab_data import (
    DEFAULT_DATA_DIR,
    DetectorResult,
    NABDataError,
    ReferenceScore,
    Series,
    data_dir,
    detectors,
    load_profiles,
    load_reference_scores,
    load_result,
    load_series,
    load_thresholds,
    load_windows,
    result_path,
)

_FLOAT_SLACK = 1e-9


def _tolerance(decimals: int | None, fallback: float) -> float:
    return fallback if decimals is None else 0.5 * 10.0**-decimals + _FLOAT_SLACK


def load_outputs(
    folder: Path, detector: str, windows: Mapping[str, Sequence[Window]]
) -> dict[str, DetectorResult]:
    """The detector's stored output for every labelled file."""
    outputs: dict[str, DetectorResult] = {}
    for relpath in windows:
        if not result_path(folder, detector, relpath).is_file():
            raise NABDataError(f"{detector} has no output for {relpath}")
        outputs[relpath] = load_result(folder, detector, relpath)
    return outputs


def score_detector(
    series: Mapping[str, Series],
    outputs: Mapping[str, DetectorResult],
    windows: Mapping[str, Sequence[Window]],
    profile: Profile,
    threshold: float,
) -> tuple[CorpusScore, dict[str, FileScore]]:
    """Score one detector's outputs on every labelled file at a threshold, and normalise."""
    per_file: dict[str, FileScore] = {}
    for relpath, file_windows in windows.items():
        data, output = series[relpath], outputs[relpath]
        if output.anomaly_scores.shape != data.timestamps.shape:
            raise ValueError(f"{output.detector} output for {relpath} has a different row count")
        # NAB takes the timestamps from the data (label) file, the scores from the output.
        per_file[relpath] = score_file(
            data.timestamps, output.anomaly_scores, file_windows, threshold, profile
        )
    return normalise(list(per_file.values())), per_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reproduce the published NAB scores.")
    parser.add_argument(
        "--data", type=Path, default=None, help=f"NAB folder (default: {DEFAULT_DATA_DIR})"
    )
    parser.add_argument("--files", action="store_true", help="also print per-file scores")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="allowed difference when the reference's rounding is unknown (default 0.01)",
    )
    args = parser.parse_args(argv)
    try:
        return run(args.data, tolerance=args.tolerance, show_files=args.files)
    except NABDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(data: Path | None, *, tolerance: float = 0.01, show_files: bool = False) -> int:
    """Print the table; 0 if every score matches its reference, else 1."""
    folder = data_dir(data)
    profiles = load_profiles(folder)
    thresholds = load_thresholds(folder)
    references = load_reference_scores(folder)
    windows = load_windows(folder)
    series = {relpath: load_series(folder, relpath) for relpath in windows}
    header = (
        f"{'detector':<18} {'profile':<20} {'threshold':>10} {'ours':>10} "
        f"{'reference':>10} {'diff':>10} {'raw':>11} {'detected':>9}  ok"
    )
    print(f"NAB data: {folder}")
    print(header)
    print("-" * len(header))
    failures = 0
    for detector in detectors(folder):
        if detector not in thresholds:
            print(f"{detector:<18} (no threshold in config/thresholds.json; skipped)")
            continue
        outputs = load_outputs(folder, detector, windows)
        for profile_name, profile in profiles.items():
            threshold = thresholds[detector][profile_name]
            corpus, per_file = score_detector(series, outputs, windows, profile, threshold)
            ref: ReferenceScore | None = references.get(detector, {}).get(profile_name)
            ok = True
            if ref is None:
                ref_text = diff_text = "n/a"
            else:
                diff = corpus.normalised - ref.normalised
                ok = abs(diff) <= _tolerance(ref.decimals, tolerance)
                if ref.raw is not None:
                    ok &= abs(corpus.raw - ref.raw) <= _tolerance(ref.raw_decimals, tolerance)
                if ref.windows is not None:
                    ok &= corpus.windows == ref.windows
                if ref.windows_detected is not None:
                    ok &= corpus.windows_detected == ref.windows_detected
                ref_text, diff_text = f"{ref.normalised:.4f}", f"{diff:+.6f}"
            failures += not ok
            print(
                f"{detector:<18} {profile_name:<20} {threshold:>10.6f} {corpus.normalised:>10.4f} "
                f"{ref_text:>10} {diff_text:>10} {corpus.raw:>11.6f} "
                f"{corpus.windows_detected:>4}/{corpus.windows:<4}  {'ok' if ok else 'DIFFERS'}"
            )
            if show_files:
                for relpath, fs in per_file.items():
                    print(
                        f"    {relpath:<58} raw {fs.raw:>10.6f}  tp {fs.tp:>5} fp {fs.fp:>5} "
                        f"fn {fs.fn:>5} windows {fs.windows_detected}/{fs.windows}"
                    )
    if failures:
        print(f"{failures} score(s) differ from the reference", file=sys.stderr)
        return 1
    print("all scores match the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
