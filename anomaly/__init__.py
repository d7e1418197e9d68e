"""citywatch: anomaly — the vectorised numpy detector (pure: no I/O, no clock).

``Detector.update(batch)`` scores every reading in [0, 1] and returns Detection events;
``events`` holds the types the alert layer consumes.
"""

from anomaly.config import SUB_DETECTORS, DetectorConfig
from anomaly.detector import Detector, Update
from anomaly.events import Detection, DetectionKind, Severity
from anomaly.registry import GENERIC_METRIC, SeriesRegistry

__all__ = [
    "GENERIC_METRIC",
    "SUB_DETECTORS",
    "Detection",
    "DetectionKind",
    "Detector",
    "DetectorConfig",
    "SeriesRegistry",
    "Severity",
    "Update",
]
