"""Device-level rules (several metrics of one device) and the area-level rule (a ward).

They read the series' last values and trends after each batch, vectorised over the
devices the batch touched, and keep one on/off state per device × rule (per ward for
the area rule), so a condition is one event when it starts and one when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anomaly.config import DetectorConfig
from anomaly.events import Detection, DetectionKind, Reference, Severity
from anomaly.registry import SeriesRegistry
from anomaly.rule_conditions import (
    FLOOD,
    METRICS,
    SCORES,
    TRENDS,
    Judged,
    RuleInputs,
    judge,
    thresholds,
)
from anomaly.state import State
from telemetry.catalogue import metric_id
from telemetry.kinds import DeviceKind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
HOUR_MS = 3_600_000


def some(mask: npt.NDArray[np.generic]) -> bool:
    """``mask.any()`` at a third of its fixed cost (a small batch pays it many times)."""
    return int(np.count_nonzero(mask)) != 0


_SEGMENT_METRICS = {"moisture", "signal", "strain", "optical_loss"}
M = {
    name: metric_id(
        DeviceKind.CABLE_SEGMENT if name in _SEGMENT_METRICS else DeviceKind.CABINET, name
    )
    for name in METRICS  # the order the compiled conditions read them in
}
_METRIC_IDS = np.array(list(M.values()), dtype=np.int64)
# The metrics whose trend or last score a rule reads (rows of the block in ``_views``).
_TREND = TRENDS
_SCORE = SCORES

RULES: tuple[DetectionKind, ...] = (
    DetectionKind.OVERHEATING,
    DetectionKind.POWER_LOSS,
    DetectionKind.FLOODING,
    DetectionKind.INTRUSION,
    DetectionKind.CABLE_CUT,
    DetectionKind.FIBRE_DEGRADATION,
)
assert RULES.index(DetectionKind.FLOODING) == FLOOD, "the compiled conditions' columns"


@dataclass(slots=True)
class _View:
    """Last values, trends and scores of one metric for the devices under evaluation."""

    value: FloatArray
    trend: FloatArray
    score: FloatArray


@dataclass(frozen=True, slots=True)
class Figures:
    """The numbers behind a rule event: the reading the rule judged (``value`` of
    ``metric``) and what it is judged against (``reference``, of ``kind``)."""

    metric: str = ""
    value: float | None = None
    reference: float | None = None
    kind: Reference | None = None

    @staticmethod
    def of(
        metric: str, value: float, reference: float = np.nan, kind: Reference | None = None
    ) -> Figures:
        """NaN (a reading or a baseline not there yet) becomes ``None``."""
        if not np.isfinite(value):
            return Figures()
        if not np.isfinite(reference):
            return Figures(metric, float(value))
        return Figures(metric, float(value), float(reference), kind)


NO_FIGURES = Figures()


@dataclass(slots=True)
class _Verdict:
    on: BoolArray
    critical: BoolArray
    text: Callable[[int], str]
    level: FloatArray | None = None
    """A value to remember when the rule starts (the flood's moisture)."""
    figures: Callable[[int], Figures] = lambda _: NO_FIGURES
    """The numbers of the event (read when the rule starts: rare, so it may gather)."""


class DeviceRules:
    """Evaluate the device rules and the area rule after each batch."""

    def __init__(self, config: DetectorConfig, registry: SeriesRegistry) -> None:
        self.config = config
        self.registry = registry
        self.active = np.zeros((16, len(RULES)), dtype=bool)
        self.start = np.zeros((16, len(RULES)), dtype=np.int64)
        self.flood_from = np.full(16, np.nan)
        """Per device: the duct moisture when water ingress was seen rising (the flood
        holds while the moisture stays near or above it)."""
        self.area_active = np.zeros(16, dtype=bool)
        self.area_start = np.zeros(16, dtype=np.int64)
        self._thresholds = thresholds(config)

    def _grow(self) -> None:
        n_dev, n_ward = len(self.registry.devices), len(self.registry.wards)
        while len(self.active) < n_dev:
            self.active = np.concatenate([self.active, np.zeros_like(self.active)])
            self.start = np.concatenate([self.start, np.zeros_like(self.start)])
            self.flood_from = np.concatenate(
                [self.flood_from, np.full_like(self.flood_from, np.nan)]
            )
        while len(self.area_active) < n_ward:
            self.area_active = np.concatenate([self.area_active, np.zeros_like(self.area_active)])
            self.area_start = np.concatenate([self.area_start, np.zeros_like(self.area_start)])

    def _views(self, got: RuleInputs, devs: IntArray) -> dict[str, _View]:
        none = np.zeros(len(devs))  # metrics without a trend or score read here
        return {
            name: _View(
                got.value[i],
                got.trend[_TREND.index(name)] if name in _TREND else none,
                got.score[_SCORE.index(name)] if name in _SCORE else none,
            )
            for i, name in enumerate(M)
        }

    def _verdicts(
        self,
        store: State,
        devs: IntArray,
        hour: int,
        got: RuleInputs,
        on: BoolArray,
        crit: BoolArray,
        fan_dead: BoolArray,
    ) -> list[_Verdict]:
        """Each rule's state (``on``, ``crit``: devices × rules, from the compiled
        conditions), its words and figures, for a batch where some rule changed."""
        cfg = self.config
        v = self._views(got, devs)
        temp, fan = v["temp_inside"], v["fan_rpm"]
        soc = v["battery_soc"]
        water, moist = v["water_level"].value, v["moisture"].value
        moisture = v["moisture"]
        strain, optical = v["strain"], v["optical_loss"]
        dev_name = self.registry.devices

        def t_heat(i: int) -> str:
            if fan_dead[i]:
                return (
                    f"fan stopped (0 rpm) with the inside at {temp.value[i]:.1f} °C, above "
                    f"the {cfg.fan_start_c:.0f} °C it starts at: fan failure?"
                )
            return (
                f"fans at {fan.value[i]:.0f} rpm yet inside temperature {temp.value[i]:.1f} °C "
                f"and rising {temp.trend[i]:.1f} °C/h: fan failure or blocked vents?"
            )

        def t_power(i: int) -> str:
            # A projection only from a measurable fall, and only while it is near enough
            # to plan for: "falling 0.0 %/h, about 5028.0 h left" says nothing.
            rate = -soc.trend[i]
            trend = ""
            if rate >= 0.5:
                hours = soc.value[i] / rate
                left = f", about {hours:.0f} h left" if hours < 48 else ""
                trend = f", falling {rate:.1f} %/h{left}"
            return (
                f"mains lost, {dev_name[int(devs[i])]} on battery: charge "
                f"{soc.value[i]:.0f} %{trend}"
            )

        def t_flood(i: int) -> str:
            if not np.isnan(water[i]):
                return f"water {water[i]:.0f} mm above the cabinet plinth floor"
            if moist[i] >= 60 or not moisture.trend[i] >= cfg.ingress_rise_per_h:
                return f"duct moisture {moist[i]:.0f} %: water ingress"
            return (
                f"duct moisture {moist[i]:.0f} %, rising {moisture.trend[i]:.0f} %/h "
                "(rain lifts it a few points): water ingress"
            )

        def t_door(_: int) -> str:
            return f"cabinet door open at {hour:02d}:00, outside working hours"

        def t_cut(i: int) -> str:
            return (
                f"no light through the segment with strain {strain.value[i]:.0f} µε and "
                f"optical loss {optical.value[i]:.1f} dB: cable cut or crushed"
            )

        def t_creep(i: int) -> str:
            return (
                f"optical loss {optical.value[i]:.2f} dB creeping up "
                f"{optical.trend[i] * 24:.2f} dB/day: fibre or splice degrading"
            )

        def usual(name: str, i: int) -> float:
            return self._usual(store, name, int(devs[i]))

        def f_heat(i: int) -> Figures:
            t = temp.value[i]
            return Figures.of("temp_inside", t, usual("temp_inside", i), Reference.BASELINE)

        def f_power(i: int) -> Figures:
            if np.isfinite(soc.value[i]):
                rate = soc.trend[i] if soc.trend[i] <= -0.5 else np.nan  # a measurable fall
                return Figures.of("battery_soc", soc.value[i], rate, Reference.TREND)
            volts = v["mains_voltage"].value[i]
            return Figures.of("mains_voltage", volts, 180.0, Reference.LIMIT)

        def f_flood(i: int) -> Figures:
            if np.isfinite(water[i]):
                limit = 100.0 if water[i] >= 100 else 30.0
                return Figures.of("water_level", water[i], limit, Reference.LIMIT)
            if moist[i] >= 60:
                limit = 85.0 if moist[i] >= 85 else 60.0
                return Figures.of("moisture", moist[i], limit, Reference.LIMIT)
            return Figures.of("moisture", moist[i], usual("moisture", i), Reference.BASELINE)

        def f_door(i: int) -> Figures:
            return Figures.of("door_open", v["door_open"].value[i])

        def f_cut(i: int) -> Figures:
            if strain.value[i] >= 1500:
                return Figures.of("strain", strain.value[i], 1500.0, Reference.LIMIT)
            if optical.value[i] >= 6:
                return Figures.of("optical_loss", optical.value[i], 6.0, Reference.LIMIT)
            name = "strain" if strain.score[i] >= cfg.score_on else "optical_loss"
            return Figures.of(name, v[name].value[i], usual(name, i), Reference.BASELINE)

        def f_creep(i: int) -> Figures:
            return Figures.of("optical_loss", optical.value[i], optical.trend[i], Reference.TREND)

        texts = (t_heat, t_power, t_flood, t_door, t_cut, t_creep)
        figures = (f_heat, f_power, f_flood, f_door, f_cut, f_creep)
        return [
            _Verdict(on[:, k], crit[:, k], texts[k], moist if k == FLOOD else None, figures[k])
            for k in range(len(RULES))
        ]

    def _usual(self, store: State, name: str, dev: int) -> float:
        """What the device's ``name`` series usually reads: the baseline level before the
        current excursion (the level held after an accepted jump, else the level when the
        current run of outliers began, else the baseline level); NaN when there is none."""
        slot = int(self.registry.metric_slots[M[name], dev])
        if slot < 0:
            return float("nan")
        row = np.array([slot], dtype=np.int64)
        held = float(store.gather("base_hold_ref", row)[0])
        if np.isfinite(held):
            return held
        if float(store.gather("base_run", row)[0]) != 0.0:
            return float(store.gather("base_run_level", row)[0])
        return float(store.gather("base_level", row)[0])

    def evaluate(self, store: State, slots: IntArray, now_ms: int) -> list[Detection]:
        """Rule events for the devices owning ``slots`` at batch time ``now_ms`` (a slot
        may come more than once; the detector gives each series of its batch once)."""
        self._grow()
        owners = self.registry.device.take(slots)
        if len(owners) * 16 < len(self.registry.devices):  # a small batch: sort its few
            owners = np.sort(owners)
            first = np.empty(len(owners), dtype=bool)
            first[:1] = True
            np.not_equal(owners[1:], owners[:-1], out=first[1:])
            devs = owners[first].astype(np.int64)
        else:  # O(n + devices), no sort
            touched = np.zeros(len(self.registry.devices), dtype=bool)
            touched[owners] = True
            devs = np.flatnonzero(touched).astype(np.int64)
        events: list[Detection] = []
        cfg = self.config
        hour = ((now_ms + round(cfg.utc_offset_h * HOUR_MS)) // HOUR_MS) % 24
        night = hour >= cfg.night_start_h or hour < cfg.night_end_h

        def judged(devs: IntArray, keep: bool) -> Judged:
            return judge(
                self.registry.device_slots,
                _METRIC_IDS,
                devs,
                store.f64,
                store.f32,
                self._thresholds,
                self.active,
                self.flood_from,
                night=night,
                keep=keep,
            )

        moved = judged(devs, keep=False).moved
        if not len(moved):  # the usual batch: no rule starts or ends
            return events + self._area(store, slots, now_ms)
        devs = devs[moved]  # the words and figures only of the devices that changed
        judged_now = judged(devs, keep=True)
        verdicts = self._verdicts(
            store,
            devs,
            hour,
            judged_now.inputs,
            judged_now.on,
            judged_now.critical,
            judged_now.fan_dead,
        )
        changed = judged_now.on != self.active.take(devs, axis=0)  # rare: a rule changed
        base = {
            DetectionKind.OVERHEATING: Severity.MAJOR,
            DetectionKind.POWER_LOSS: Severity.MAJOR,
            DetectionKind.FLOODING: Severity.MAJOR,
            DetectionKind.INTRUSION: Severity.MAJOR,
            DetectionKind.CABLE_CUT: Severity.CRITICAL,
            DetectionKind.FIBRE_DEGRADATION: Severity.MINOR,
        }
        for k, (kind, verdict) in enumerate(zip(RULES, verdicts, strict=True)):
            for i in np.flatnonzero(changed[:, k]):
                dev = int(devs[i])
                on = bool(verdict.on[i])
                if on:
                    self.start[dev, k] = now_ms
                if kind is DetectionKind.FLOODING:
                    level = verdict.level
                    self.flood_from[dev] = level[i] if on and level is not None else np.nan
                sev = Severity.CRITICAL if verdict.critical[i] else base[kind]
                text = verdict.text(int(i))
                figures = verdict.figures(int(i))
                events.append(
                    Detection(
                        kind=kind,
                        severity=sev,
                        active=on,
                        ward=self.registry.wards[int(self.registry.device_ward[dev])],
                        device=self.registry.devices[dev],
                        start_ms=int(self.start[dev, k]),
                        ts_ms=now_ms,
                        score=1.0 if on else 0.0,
                        value=figures.value,
                        value_metric=figures.metric,
                        reference=figures.reference,
                        reference_kind=figures.kind,
                        explanation=text if on else f"ended: {text}",
                    )
                )
                self.active[dev, k] = on
        events.extend(self._area(store, slots, now_ms))
        return events

    def _area(self, store: State, batch_slots: IntArray, now_ms: int) -> list[Detection]:
        """One AREA_OUTAGE per ward when a share of its cabinets went on battery lately.

        Only a batch with on-battery readings can start or end one (time passing only
        ages the recent ones out): other batches skip the scan of every device."""
        cfg, reg = self.config, self.registry
        n_dev = len(reg.devices)
        if n_dev == 0 or not some(reg.metric.take(batch_slots) == M["on_battery"]):
            return []
        slots = reg.metric_slots[M["on_battery"], :n_dev]
        have = slots >= 0
        if not some(have):
            return []
        safe = np.where(have, slots, 0)
        on = have & (store.gather("core_last_x", safe) >= 1)
        since = store.gather("core_since_ts", safe)
        recent = on & (since >= now_ms - cfg.area_window_ms)
        ward = reg.device_ward[:n_dev]
        n_ward = len(reg.wards)
        total = np.bincount(ward[have], minlength=n_ward)
        n_on = np.bincount(ward[on], minlength=n_ward)
        n_recent = np.bincount(ward[recent], minlength=n_ward)
        with np.errstate(invalid="ignore", divide="ignore"):
            start = (n_recent >= cfg.area_min_cabinets) & (n_recent / total >= cfg.area_share)
            hold = (n_on >= cfg.area_min_cabinets) & (n_on / total >= cfg.area_share / 2)
        active = self.area_active[:n_ward]
        new = np.where(active, hold, start)
        events: list[Detection] = []
        for w in np.flatnonzero(new != active):
            is_on = bool(new[w])
            if is_on:
                self.area_start[w] = now_ms
            text = (
                f"{n_on[w]} of {total[w]} cabinets in {reg.wards[w]} on battery "
                f"within {cfg.area_window_ms // 60_000} min: area power outage"
            )
            events.append(
                Detection(
                    kind=DetectionKind.AREA_OUTAGE,
                    severity=Severity.CRITICAL,
                    active=is_on,
                    ward=reg.wards[w],
                    start_ms=int(self.area_start[w]),
                    ts_ms=now_ms,
                    score=float(min(1.0, n_on[w] / total[w])) if is_on else 0.0,
                    value=float(n_on[w]),
                    reference=float(total[w]),
                    reference_kind=Reference.TOTAL,
                    explanation=text if is_on else f"ended: mains back, {text}",
                )
            )
        self.area_active[:n_ward] = new
        return events

    def to_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """Rule state for a checkpoint."""
        return {
            "rules_active": self.active.copy(),
            "rules_start": self.start.copy(),
            "rules_flood_from": self.flood_from.copy(),
            "area_active": self.area_active.copy(),
            "area_start": self.area_start.copy(),
        }

    def load(self, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
        """Restore :meth:`to_arrays`."""
        self.active = arrays["rules_active"].astype(bool)
        self.start = arrays["rules_start"].astype(np.int64)
        self.flood_from = arrays["rules_flood_from"].astype(np.float64)
        self.area_active = arrays["area_active"].astype(bool)
        self.area_start = arrays["area_start"].astype(np.int64)

    def rows(self, devs: IntArray) -> dict[str, npt.NDArray[np.generic]]:
        """The rule state of devices ``devs`` and the whole (small) area state, for a
        delta checkpoint (:meth:`load_rows`)."""
        self._grow()
        return {
            "rules_active": self.active[devs],
            "rules_start": self.start[devs],
            "rules_flood_from": self.flood_from[devs],
            "area_active": self.area_active.copy(),
            "area_start": self.area_start.copy(),
        }

    def load_rows(self, devs: IntArray, arrays: dict[str, npt.NDArray[np.generic]]) -> None:
        """Restore :meth:`rows` (the registry already holds the devices)."""
        self._grow()
        self.active[devs] = arrays["rules_active"]
        self.start[devs] = arrays["rules_start"]
        self.flood_from[devs] = arrays["rules_flood_from"]
        self.area_active = arrays["area_active"].astype(bool)
        self.area_start = arrays["area_start"].astype(np.int64)
