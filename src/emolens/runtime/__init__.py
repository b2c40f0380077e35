"""Classifiers (ONNX Runtime or torch) behind one interface, and model name resolution."""

from .classifier import Classifier, load_classifier
from ..models.resolve import resolve_weights

__all__ = ["Classifier", "load_classifier", "resolve_weights"]
