"""Score whole series offline with the streaming detector (each score uses only the past).

Many series go through one detector at once, one slot each, in a single batch: the
compiled kernel walks each series' readings in turn, its state row in the cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from anomaly.config import DetectorConfig
from anomaly.detector import Detector
from anomaly.registry import GENERIC_METRIC

FloatArray = npt.NDArray[np.float64]


def score_series(
    series: Sequence[tuple[npt.NDArray[np.int64], FloatArray]],
    config: DetectorConfig | None = None,
    *,
    metric: int = GENERIC_METRIC,
    view: Literal["onset", "max"] = "onset",
) -> list[FloatArray]:
    """Anomaly scores in [0, 1] for each ``(ts_ms, values)`` series, row for row.

    ``view`` "onset" (the default) gives the calibrated onset score (``Update.onset``):
    what an offline scorer such as NAB wants, one high score where an anomaly starts;
    "max" gives the sub-detectors' max (``Update.scores``, how far from normal).

    Examples
    --------
    >>> import numpy as np
    >>> ts = np.arange(200, dtype=np.int64) * 300_000
    >>> x = np.sin(np.arange(200) / 5.0); x[150] = 9.0
    >>> [scores] = score_series([(ts, x)])
    >>> int(np.argmax(scores))
    150
    """
    det = Detector(config, capacity=max(1, len(series)))
    slots, stamps, values = [], [], []
    for i, (ts, x) in enumerate(series):
        if len(ts) != len(x):
            raise ValueError(f"series {i}: {len(ts)} timestamps but {len(x)} values")
        slot = det.registry.slot(f"series-{i}", metric)
        slots.append(np.full(len(x), slot, dtype=np.int64))
        stamps.append(np.asarray(ts, dtype=np.int64))
        values.append(np.asarray(x, dtype=np.float64))
    if not slots:
        return []
    result = det.update_arrays(
        np.concatenate(slots), np.concatenate(stamps), np.concatenate(values)
    )
    bounds = np.cumsum([0, *(len(x) for x in values)])
    out = result.onset if view == "onset" else result.scores
    return [out[a:b] for a, b in itertools.pairwise(bounds)]
