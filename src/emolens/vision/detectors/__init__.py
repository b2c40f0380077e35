"""Pluggable face detectors behind one interface, built by name: ``create_detector("retinaface")``.

Every detector takes an RGB uint8 image and returns :class:`Detection` objects (box, score,
5 landmarks when it gives them). Weights ship inside the packages: nothing is downloaded.
"""

from .base import LANDMARK_NAMES, Detection, FaceDetector
from .registry import (DEFAULT_DETECTOR, DetectorInfo, create_detector, detector_info, list_detectors,
                       register_detector)

__all__ = ["DEFAULT_DETECTOR", "Detection", "DetectorInfo", "FaceDetector", "LANDMARK_NAMES", "create_detector",
           "detector_info", "list_detectors", "register_detector"]
