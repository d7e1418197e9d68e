"""A small city that grows while it reports: the delta checkpoint tests' input."""

import numpy as np

from telemetry import ReadingBatch
from telemetry.catalogue import metric_id
from telemetry.kinds import DeviceKind

T0 = 1_764_300_000_000  # 2025-11-28 03:20 UTC: 10:20 in Hanoi
MINUTE = 60_000
CABINET = [
    metric_id(DeviceKind.CABINET, m)
    for m in ("temp_inside", "humidity", "door_open", "mains_voltage", "on_battery")
]


def city_minute(rng: np.random.Generator, step: int) -> ReadingBatch:
    """One minute of a city that grows by a few devices a minute (20 .. 140 devices, in
    two wards; from minute 40 the devices of ward ``w1`` lose mains, and some reports
    lack metrics, so later reports bring new series of known devices)."""
    rows: list[tuple[str, str, int, float]] = []
    for d in range(min(20 + 3 * step, 140)):
        if rng.random() < 0.2:
            continue  # some devices skip a minute (dropouts for tick)
        ward = f"w{d % 2}"
        outage = step >= 40 and ward == "w1"
        values = {
            CABINET[0]: 30 + rng.normal(0, 0.3) + (15 if d == 7 and step > 30 else 0),
            CABINET[1]: 60 + rng.normal(0, 1),
            CABINET[2]: float(d == 5 and step > 25),
            CABINET[3]: 0.0 if outage else 228 + rng.normal(0, 1),
            CABINET[4]: float(outage),
        }
        for metric, value in values.items():
            if step < 10 and metric == CABINET[1] and d % 3:
                continue
            rows.append((f"cab-{d:03d}", ward, metric, value))
    n = len(rows)
    ts = T0 + step * MINUTE + rng.integers(0, 1000, n)
    return ReadingBatch(
        np.array([r[0] for r in rows], dtype=object),
        np.array([r[1] for r in rows], dtype=object),
        np.array([r[2] for r in rows], dtype=np.int16),
        ts.astype(np.int64),
        np.array([r[3] for r in rows]),
    )
