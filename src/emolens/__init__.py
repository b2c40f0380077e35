"""emolens: facial expression recognition, from raw data set to live demo, offline on a CPU."""

__version__ = "0.1.0"
