"""Errors that the CLI turns into one clear line instead of a traceback."""


class EmolensError(Exception):
    """Base class: a problem with the user's input or environment, with a message that names it."""


class DataError(EmolensError):
    """A data set file, row or field is missing or malformed."""


class ModelError(EmolensError):
    """An unknown model, a weights file that fails its checksum, or a class set mismatch."""
