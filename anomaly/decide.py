"""Scoring is separate from deciding: thresholds with hysteresis turn the component
scores of each series into Detection events (start, end), with a severity and words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anomaly.config import DetectorConfig
from anomaly.context import HOUR_MS, BoolArray, FloatArray, Round, Store, nonzero, some
from anomaly.detectors import Scores, SeriesDetector
from anomaly.events import Detection, DetectionKind, Severity
from anomaly.explain import explain
from anomaly.registry import GENERIC_METRIC, SeriesRegistry
from telemetry.catalogue import METRICS_BY_ID

_BASE_SEVERITY = {
    DetectionKind.BASELINE: Severity.MINOR,
    DetectionKind.TIME_OF_DAY: Severity.MINOR,
    DetectionKind.LEVEL_SHIFT: Severity.MINOR,
    DetectionKind.FLATLINE: Severity.MINOR,
    DetectionKind.DROPOUT: Severity.MAJOR,
}


def severity(kind: DetectionKind, score: float, z: float) -> Severity:
    """Limits: warning or critical by the level crossed; statistics: major when extreme."""
    if kind is DetectionKind.LIMIT:
        return Severity.CRITICAL if round(abs(z)) >= 2 else Severity.WARNING
    base = _BASE_SEVERITY.get(kind, Severity.MINOR)
    if base is Severity.MINOR and score >= 0.97:
        return Severity.MAJOR
    return base


@dataclass(slots=True)
class Decider:
    """Per series and component: on at ``score_on``, off below ``score_off``."""

    config: DetectorConfig
    components: Sequence[SeriesDetector]
    registry: SeriesRegistry

    def allocate(self, store: Store, capacity: int) -> None:
        width = max(1, len(self.components))
        store.add("ev_active", capacity, 0.0, width=width)
        store.add("ev_start", capacity, 0.0, width=width)
        store.add("ev_peak", capacity, 0.0, width=width)

    def step(
        self,
        r: Round,
        results: Sequence[Scores],
        store: Store,
        combined: FloatArray | None = None,
    ) -> list[tuple[int, Detection]]:
        """Events for the transitions of this round (a Python loop over transitions only),
        each with its group ``2 k`` (component k's starts) or ``2 k + 1`` (its ends), the
        order they go out in, so the pieces of a round give one round's events.
        ``combined``: the max of the components' scores, if the caller has it."""
        cfg = self.config
        out: list[tuple[int, Detection]] = []
        active_tab, start_tab, peak_tab = store["ev_active"], store["ev_start"], store["ev_peak"]
        # One row gather for every component; most rounds have nothing active and no
        # score at ``score_on``, which two reductions per component tell.
        active_rows: BoolArray = active_tab.take(r.slots, axis=0) > 0
        any_active: BoolArray = np.asarray(active_rows.any(axis=0))
        if combined is not None and not some(any_active) and combined.max() < cfg.score_on:
            return out  # nothing active, nothing starting (NaN would fail the test)
        for k, (det, res) in enumerate(zip(self.components, results, strict=True)):
            if not any_active[k]:
                if not res.score.max() >= cfg.score_on:
                    continue
                active = active_rows[:, k]
                begin = res.score >= cfg.score_on
                end = active  # all False
            else:
                active = active_rows[:, k]
                begin = ~active & (res.score >= cfg.score_on)
                end = active & (res.score < cfg.score_off) & r.learnable
                if det.kind is DetectionKind.DROPOUT:
                    # The reading that ends a silence is the evidence of it: start and end.
                    end = active & r.learnable
            still = active & ~end
            if some(still):
                s = r.slots[still]
                peak_tab[s, k] = np.maximum(peak_tab[s, k], res.score[still])
            for i in nonzero(begin):
                slot, at = int(r.slots[i]), int(i)
                start = float(r.last_ts[i] if det.kind is DetectionKind.DROPOUT else r.ts_ms[i])
                peak = float(res.score[i])
                ev = self.event(det.kind, r, res, at, active=True, start=start, peak=peak)
                out.append((2 * k, ev))
                if det.kind is DetectionKind.DROPOUT:
                    ev = self.event(det.kind, r, res, at, active=False, start=start, peak=peak)
                    out.append((2 * k, ev))
                    continue
                active_tab[slot, k], start_tab[slot, k] = 1.0, start
                peak_tab[slot, k] = res.score[i]
            for i in nonzero(end):
                slot = int(r.slots[i])
                start, peak = float(start_tab[slot, k]), float(peak_tab[slot, k])
                ev = self.event(det.kind, r, res, int(i), active=False, start=start, peak=peak)
                out.append((2 * k + 1, ev))
                active_tab[slot, k] = 0.0
        return out

    def event(
        self,
        kind: DetectionKind,
        r: Round,
        res: Scores,
        i: int,
        *,
        active: bool,
        start: float,
        peak: float,
    ) -> Detection:
        slot = int(r.slots[i])
        device, metric_id = self.registry.key(slot)
        value, z, ref = float(r.x[i]), float(res.z[i]), float(res.ref[i])
        hour = int(((int(r.ts_ms[i]) + round(self.config.utc_offset_h * HOUR_MS)) // HOUR_MS) % 24)
        lim = r.limits[i]
        text = explain(
            kind,
            metric_id,
            value,
            z,
            ref,
            hour=hour,
            limits=(float(lim[0]), float(lim[1]), float(lim[2]), float(lim[3])),
            since_ms=float(r.ts_ms[i] - r.since_ts[i]),
        )
        if not active:
            text = f"ended: {text}" if kind is not DetectionKind.DROPOUT else f"resumed: {text}"
        name = "" if metric_id == GENERIC_METRIC else METRICS_BY_ID[metric_id].name
        return Detection(
            kind=kind,
            severity=severity(kind, peak, z),
            active=active,
            ward=self.registry.ward_of_slot(slot),
            device=device,
            metric=name,
            start_ms=int(start),
            ts_ms=int(r.ts_ms[i]),
            score=float(np.clip(peak, 0.0, 1.0)),
            value=value,
            explanation=text,
        )
