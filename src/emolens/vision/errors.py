"""Errors of the recognition pipeline; each message names the file, device or package concerned."""

from ..errors import EmolensError


class ImageError(EmolensError):
    """An image that cannot be read: missing, empty, damaged, not an image, or too large."""


class VideoError(EmolensError):
    """A video that cannot be opened or written."""


class DetectorError(EmolensError):
    """An unknown face detector, or one whose package is not installed."""


class DeviceError(EmolensError):
    """No camera or no display for the live window."""
