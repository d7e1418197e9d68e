"""Our streaming detector on NAB, scored with NAB's rules, beside the published detectors.

Runs the detector in generic single-series mode (no catalogue metric: no physical
limits, learned period) over every labelled NAB file with one configuration, sweeps
the threshold over every distinct score, as NAB's optimiser searches (per profile, one
threshold for all files),
and prints the normalised scores next to ``results/reference_scores.json``. Writes
nothing.

    python benchmarks/nab_detector.py [--data PATH/NAB] [--files] [--components]

Choices, all general (none looks at NAB labels; the only thing chosen on this data is
the threshold, by NAB's own sweep): the live configuration unchanged; the output is the
detector's *onset* score (``Update.onset``, anomaly/kernel.py), all of it live (a score
uses only earlier readings; no whole-file range given up front):

- evidence in decades (-log10 p), the max of: each statistical sub-detector's
  ``log1p(|z|)`` (baseline, time of day, level shift, and the z of block means of 8 and
  64 readings) calibrated per series against its own long-run distribution (HTM's
  anomaly likelihood), counted only where it beats that statistic's own decaying record;
  an outlier no farther from the baseline level than the series' routine excursion of
  that side (by 30 %) gives no baseline or time-of-day evidence (a daily spike);
  a reading beyond the series' observed range by 5 % of it, or a block mean (or a
  block's mean absolute step, its dispersion) beyond the range of the blocks before it by
  30 % of it (HTM's "spatial anomaly" check): 20 decades, more for each doubling of the
  distance;
- reported (score = evidence / (evidence + 5)) when at least 5 decades and 1.2 times the
  last report's evidence, which halves every 60 readings; for 16 readings after a report
  only twice its evidence reports again. Elsewhere the score is 0.

Flatline, dropout and limits raise their own events but do not feed the onset score
(sensor health, not process anomalies). Warm-up 48 readings (NAB's probation is 15 % of
a file, at least 150 rows here). ``--components`` also sweeps each sub-detector's own
(uncalibrated) score, to show where the combination gains.

Besides the corpus score it prints a leave-one-category-out check (the threshold tuned on
the other categories, the held-out one scored alone), which is what an outside check of
an unseen category measures, and the detector's own rate on these few long series.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt

from anomaly.config import DetectorConfig
from anomaly.detector import Detector, prepare_kernel
from anomaly.offline import score_series
from anomaly.registry import GENERIC_METRIC
from benchmarks.nab import (
    CorpusScore,
    FileScore,
    Profile,
    Window,
    normalise,
    probation_length,
    row_weights,
    score_file,
    window_rows,
)
from benchmarks.nab_data import (
    NABDataError,
    Series,
    data_dir,
    load_profiles,
    load_reference_scores,
    load_series,
    load_windows,
)


def run_detector(
    series: Mapping[str, Series], config: DetectorConfig | None = None
) -> dict[str, npt.NDArray[np.float64]]:
    """Our scores for every file, all files streamed through one detector."""
    names = list(series)
    inputs = [
        (series[n].timestamps.astype("datetime64[ms]").astype(np.int64), series[n].values)
        for n in names
    ]
    return dict(zip(names, score_series(inputs, config), strict=True))


def run_components(
    series: Mapping[str, Series], config: DetectorConfig | None = None
) -> dict[str, dict[str, npt.NDArray[np.float64]]]:
    """Each sub-detector's own scores for every file (sub-detector -> file -> scores)."""
    det = Detector(config, capacity=len(series))
    names = list(series)
    slots = [np.full(len(series[n].values), det.registry.slot(n, GENERIC_METRIC)) for n in names]
    stamps = [series[n].timestamps.astype("datetime64[ms]").astype(np.int64) for n in names]
    res = det.update_arrays(
        np.concatenate(slots),
        np.concatenate(stamps),
        np.concatenate([series[n].values for n in names]),
        components=True,
    )
    bounds = np.cumsum([0, *(len(s) for s in slots)])
    return {
        comp: {n: arr[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)}
        for comp, arr in res.components.items()
    }


def corpus_at(
    series: Mapping[str, Series],
    scores: Mapping[str, npt.NDArray[np.float64]],
    windows: Mapping[str, Sequence[Window]],
    profile: Profile,
    threshold: float,
) -> tuple[CorpusScore, dict[str, FileScore]]:
    """NAB's corpus score of our outputs at one threshold."""
    per_file = {
        rel: score_file(series[rel].timestamps, scores[rel], wins, threshold, profile)
        for rel, wins in windows.items()
    }
    return normalise(list(per_file.values())), per_file


def _raw_curve(
    series: Series,
    scores: npt.NDArray[np.float64],
    windows: Sequence[Window],
    profile: Profile,
    thresholds: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """NAB's raw score of one file at every threshold (ascending) at once: per scorable
    window its first detection's sweep score (or the miss cost), plus the sweep scores
    of the detections outside every window, as ``score_file`` computes for one."""
    costs = profile.costs
    n = len(scores)
    rows = window_rows(series.timestamps, windows)
    weights, window_of = row_weights(n, rows, costs)
    probation = probation_length(n)
    s = np.where(np.isnan(scores), -np.inf, scores)
    s[:probation] = -np.inf
    outside = (window_of < 0) & (np.arange(n) >= probation)
    order = np.argsort(-s[outside], kind="stable")
    ranked = s[outside][order]
    fp_sums = np.concatenate([[0.0], np.cumsum(weights[outside][order])])
    raw = fp_sums[np.searchsorted(-ranked, -thresholds, side="right")]
    for first, last in rows:
        if last < probation:
            continue
        running = np.maximum.accumulate(s[first : last + 1])
        at = np.searchsorted(running, thresholds, side="left")  # first row reaching t
        hit = at <= last - first
        tp = np.maximum(-costs.fn, weights[first + np.minimum(at, last - first)])
        raw += np.where(hit, tp, -costs.fn)
    return raw


def sweep(
    series: Mapping[str, Series],
    scores: Mapping[str, npt.NDArray[np.float64]],
    windows: Mapping[str, Sequence[Window]],
    profile: Profile,
) -> tuple[float, CorpusScore]:
    """The threshold with the best normalised score, trying every distinct score (what
    NAB's optimiser searches for; a grid of quantiles missed it by about a point), then
    scored by NAB's own per-file rules at that threshold."""
    every = np.unique(np.concatenate([scores[r] for r in windows]))
    thresholds = np.append(every[np.isfinite(every)], np.inf)
    raw = np.zeros(len(thresholds))
    for rel, wins in windows.items():
        raw += _raw_curve(series[rel], scores[rel], wins, profile, thresholds)
    # The normalised score is an increasing function of the raw sum: its best is the same.
    best = float(thresholds[int(np.argmax(raw))])
    corpus = corpus_at(series, scores, windows, profile, best)[0]
    if not math.isclose(corpus.raw, float(raw.max()), abs_tol=1e-6):
        raise AssertionError(f"sweep {raw.max()} disagrees with NAB's scoring {corpus.raw}")
    return best, corpus


def detector_rate(series: Mapping[str, Series], repeats: int = 5) -> float:
    """Readings/s of ``update_arrays`` over every file at once (one batch), best of a
    few fresh detectors: the few-long-series case (a year of one cabinet)."""
    names = list(series)
    x = np.concatenate([series[n].values for n in names])
    ts = np.concatenate(
        [series[n].timestamps.astype("datetime64[ms]").astype(np.int64) for n in names]
    )
    best = math.inf
    for _ in range(repeats):
        det = Detector(capacity=len(names))
        slots = np.concatenate(
            [np.full(len(series[n].values), det.registry.slot(n, GENERIC_METRIC)) for n in names]
        )
        t0 = time.perf_counter()
        det.update_arrays(slots, ts, x)
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def leave_one_category_out(
    series: Mapping[str, Series],
    scores: Mapping[str, npt.NDArray[np.float64]],
    windows: Mapping[str, Sequence[Window]],
    profile: Profile,
) -> dict[str, tuple[float, float]]:
    """Per category with labelled windows: (threshold tuned on the other categories, the
    held-out category's normalised score at it)."""
    by_cat: dict[str, list[str]] = {}
    for rel in windows:
        by_cat.setdefault(rel.split("/")[0], []).append(rel)
    out: dict[str, tuple[float, float]] = {}
    for cat, files in sorted(by_cat.items()):
        if not any(windows[f] for f in files):
            continue
        others = {rel: w for rel, w in windows.items() if rel not in files}
        t, _ = sweep(series, scores, others, profile)
        held = {rel: windows[rel] for rel in files}
        out[cat] = (t, corpus_at(series, scores, held, profile, t)[0].normalised)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score our detector on NAB.")
    parser.add_argument("--data", type=Path, default=None, help="NAB folder")
    parser.add_argument("--files", action="store_true", help="also print per-file scores")
    parser.add_argument(
        "--components", action="store_true", help="also sweep each sub-detector alone"
    )
    args = parser.parse_args(argv)
    try:
        folder = data_dir(args.data)
    except NABDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    windows = load_windows(folder)
    profiles = load_profiles(folder)
    series = {rel: load_series(folder, rel) for rel in windows}
    ready = prepare_kernel()
    rows = sum(len(s.values) for s in series.values())
    t0 = time.perf_counter()
    scores = run_detector(series)
    elapsed = time.perf_counter() - t0
    rate = detector_rate(series)
    print(f"NAB data: {folder} ({len(series)} files, {rows} rows, scored in {elapsed:.2f} s)")
    print(
        f"detector rate on these {len(series)} long series: {rate / 1e6:.2f} M readings/s "
        f"(update_arrays alone, best of 5; kernel ready in {ready.seconds:.1f} s, "
        f"{'compiled' if ready.compiled else 'cached'})"
    )
    refs = load_reference_scores(folder)
    ours: dict[str, tuple[float, CorpusScore]] = {}
    for name, profile in profiles.items():
        ours[name] = sweep(series, scores, windows, profile)
    header = f"{'detector':<22}" + "".join(f"{p:>22}" for p in profiles)
    print(header)
    print("-" * len(header))
    line = f"{'citywatch (ours)':<22}"
    for name in profiles:
        t, c = ours[name]
        line += f"{c.normalised:>12.1f} @ {t:<7.4f}"
    print(line)
    for det, profs in sorted(refs.items(), key=lambda kv: -kv[1]["standard"].normalised):
        print(
            f"{det:<22}" + "".join(f"{profs[p].normalised:>22.1f}" for p in profiles if p in profs)
        )
    print("published on these 51 files (standard): ARTime 77.0, CAD OSE 75.4, HTM 73.0")
    print(
        "ours: the onset score = per-series calibrated evidence (baseline, time of day, level "
        "shift, block means of 8 and 64) beating its own record, outliers of a routine size "
        "muted, HTM's new-extreme check on "
        "readings, block means and block dispersion, reported against the last report with a "
        "refractory period; one configuration, the live one"
    )
    t, c = ours["standard"]
    print(
        f"standard: windows detected {c.windows_detected}/{c.windows}, false-positive rows "
        f"{c.fp}, threshold {t:.4f}"
    )
    print("leave one category out (threshold tuned on the others; standard profile):")
    loco = leave_one_category_out(series, scores, windows, profiles["standard"])
    for category, (t_c, score_c) in loco.items():
        print(f"  {category:<24} {score_c:6.1f} @ {t_c:.4f}")
    print(f"  mean over categories with windows: {np.mean([v for _, v in loco.values()]):.1f}")
    if args.components:
        for comp, comp_scores in run_components(series).items():
            if max(float(v.max(initial=0.0)) for v in comp_scores.values()) == 0.0:
                print(f"  {comp:<14} alone: never scores on these series")
                continue
            t_c, c_c = sweep(series, comp_scores, windows, profiles["standard"])
            print(
                f"  {comp:<14} alone: standard {c_c.normalised:6.1f} @ {t_c:.4f}, windows "
                f"{c_c.windows_detected}/{c_c.windows}, false-positive rows {c_c.fp}"
            )
    if args.files:
        _, per_file = corpus_at(series, scores, windows, profiles["standard"], t)
        for rel, fs in per_file.items():
            print(
                f"  {rel:<60} raw {fs.raw:>8.3f} fp {fs.fp:>4} "
                f"windows {fs.windows_detected}/{fs.windows}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
