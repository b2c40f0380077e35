"""The web service: REST upload, WebSocket stream and the offline web page (``emolens serve``).

Needs the ``serve`` extra: ``pip install "emolens[serve]"``.
"""

from __future__ import annotations

from ..errors import names_missing_extras
from .config import ServeSettings


@names_missing_extras
def create_app(settings: ServeSettings | None = None, **kwargs):
    from .app import create_app as _create_app

    return _create_app(settings, **kwargs)


__all__ = ["ServeSettings", "create_app"]
