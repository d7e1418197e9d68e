"""citywatch: anomaly — the streaming detector, one compiled kernel (pure: no I/O, no clock).

``Detector.update(batch)`` scores every reading in [0, 1] and returns Detection events;
``events`` holds the types the alert layer consumes.
"""

from anomaly.config import SUB_DETECTORS, DetectorConfig
from anomaly.detector import Detector, KernelReady, Update, prepare_kernel
from anomaly.events import Detection, DetectionKind, Severity
from anomaly.registry import GENERIC_METRIC, SeriesRegistry

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
