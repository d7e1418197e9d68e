"""Regroup learned state by ward: the detectors of one partitioning of the city become
those of another, every series, device rule and area rule keeping what it learned.

A cluster that changes its number of partitions (``citywatch partitions resize``) moves
wards between partitions; each ward's series move with it, so no baseline is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from anomaly.config import DetectorConfig
from anomaly.detector import Detector


def regroup(
    detectors: Sequence[Detector],
    target_of: Callable[[str], int],
    targets: int,
    config: DetectorConfig | None = None,
) -> list[Detector]:
    """``targets`` detectors holding every series of ``detectors``, each in the detector
    ``target_of(its ward)``; a series' state rows, its device's rule state and its ward's
    area state are copied as they are. A series (device × metric) must live in one
    source detector only.

    Examples
    --------
    >>> import numpy as np
    >>> from telemetry import ReadingBatch
    >>> det = Detector()
    >>> batch = ReadingBatch(
    ...     np.array(["cab-1", "cab-2"], dtype=object), np.array(["w_a", "w_b"], dtype=object),
    ...     np.array([1, 1], dtype=np.int16), np.array([0, 0], dtype=np.int64),
    ...     np.array([30.0, 31.0]))
    >>> _ = det.update(batch)
    >>> a, b = regroup([det], lambda ward: 0 if ward == "w_a" else 1, 2)
    >>> a.registry.key(0), b.registry.key(0)
    (('cab-1', 1), ('cab-2', 1))
    """
    if not detectors and config is None:
        config = DetectorConfig()
    cfg = config or detectors[0].config
    out = [Detector(cfg) for _ in range(targets)]
    for src in detectors:
        reg = src.registry
        size = reg.size
        tables = src.state.snapshot(size)
        for slot in range(size):
            device, metric = reg.key(slot)
            ward = reg.ward_of_slot(slot)
            dst = out[target_of(ward)]
            new = dst.registry.slot(device, metric, ward)
            if new != dst.registry.size - 1:
                raise ValueError(f"series {device}/{metric} is in two source detectors")
            dst.state.grow(dst.registry.capacity)
            for name, table in tables.items():
                getattr(dst.state, name)[new] = table[slot]
        for index, device in enumerate(reg.devices):
            ward = reg.wards[int(reg.device_ward[index])]
            dst = out[target_of(ward)]
            moved = dst.registry.device_index(device)
            if moved is None:  # a device without series: nothing of it to keep
                continue
            dst.rules._grow()
            dst.rules.active[moved] = src.rules.active[index]
            dst.rules.start[moved] = src.rules.start[index]
            dst.rules.flood_from[moved] = src.rules.flood_from[index]
        for index, ward in enumerate(reg.wards):
            dst = out[target_of(ward)]
            moved = dst.registry.ward_index(ward)
            if moved is None or index >= len(src.rules.area_active):
                continue
            dst.rules._grow()
            dst.rules.area_active[moved] = src.rules.area_active[index]
            dst.rules.area_start[moved] = src.rules.area_start[index]
    return out
