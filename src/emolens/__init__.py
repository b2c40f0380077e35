"""emolens: facial expression recognition, from raw data set to live demo, offline on a CPU."""

__version__ = "0.1.0"

from .api import Recognizer  # noqa: E402  (light: heavy modules load when a Recognizer is built)
