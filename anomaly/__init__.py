"""citywatch: anomaly — the streaming detector, one compiled kernel (pure: no I/O, no clock).

``Detector.update(batch)`` scores every reading in [0, 1] and returns Detection events;
``events`` holds the types the alert layer consumes.
"""

from anomaly.wide_vectors import prefer_wide_vectors

prefer_wide_vectors()  # before any numba code of the package is defined

from anomaly.config import SUB_DETECTORS, DetectorConfig  # noqa: E402
from anomaly.detector import Detector, KernelReady, Update, prepare_kernel  # noqa: E402
from anomaly.events import Detection, DetectionKind, Severity  # noqa: E402
from anomaly.registry import GENERIC_METRIC, SeriesRegistry  # noqa: E402

__all__ = [
    "GENERIC_METRIC",
    "SUB_DETECTORS",
    "Detection",
    "DetectionKind",
    "Detector",
    "DetectorConfig",
    "KernelReady",
    "SeriesRegistry",
    "Severity",
    "Update",
    "prepare_kernel",
]
