"""Who may talk to the service: Host names (against DNS rebinding) and browser origins (other pages).

A server on a laptop or a LAN is reachable by every web page its user opens, so:

- **Host**: bound to a loopback address, the app answers only requests whose ``Host`` header
  names loopback (``localhost``, ``127.0.0.1``, ``[::1]``, any port) or one of ``allow_hosts``
  (a deployment behind a proxy); others get ``421``. A rebinding attacker's page, which reaches
  127.0.0.1 under its own host name, is refused. Bound to another address, the header is
  checked only when ``allow_hosts`` is given. ``"*"`` turns the check off.
- **Origin, WebSocket**: the handshake must carry an ``Origin``: the page's own (the same host
  and port as its ``Host`` header) or one of ``allow_origins``. A foreign or missing one is
  refused with ``403`` before the stream is accepted (browsers do not apply CORS to WebSockets).
  ``"*"`` in ``allow_origins`` accepts any origin, or none.
- **Origin, HTTP**: a request carrying a foreign ``Origin`` (a script on another web page) gets
  ``403`` before any work is done; requests without one (curl, apps) are answered. CORS
  headers for ``allow_origins`` come from Starlette's ``CORSMiddleware`` (see ``app.py``).
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str | None:
    """The name part of a ``Host`` header (``[::1]:8000`` -> ``[::1]``), lower case; None if malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = (value[:end + 1], value[end + 1:]) if end > 0 else ("", "")
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not name or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
        return None
    return name


class OriginHostGuard:
    """Plain ASGI middleware applying the rules above to ``http`` and ``websocket`` scopes."""

    def __init__(self, app, bind_host: str, allow_hosts=(), allow_origins=()):
        self.app = app
        self.allow_hosts = {h.lower() for h in allow_hosts}
        self.check_host = "*" not in self.allow_hosts and (is_loopback(bind_host) or bool(self.allow_hosts))
        self.allow_origins = {o.rstrip("/").lower() for o in allow_origins}
        self.any_origin = "*" in self.allow_origins

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name, value.decode("latin-1"))
        host = headers.get(b"host", "")
        origin = headers.get(b"origin")
        problem = None
        if self.check_host and not self.host_allowed(host):
            status, code = 421, "misdirected_request"
            problem = ("this server answers requests for localhost, 127.0.0.1 and [::1] only; "
                       "start it with --allow-host NAME to answer another host name")
        elif scope["type"] == "websocket" and not self.origin_allowed(origin, host, required=True):
            status, code = 403, "forbidden_origin"
            problem = "WebSocket refused: its Origin is not this page's own or an allowed one (--allow-origin)"
        elif scope["type"] == "http" and not self.origin_allowed(origin, host, required=False):
            status, code = 403, "forbidden_origin"
            problem = "request refused: its Origin is not this page's own or an allowed one (--allow-origin)"
        if problem is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            # closing before accepting makes the server answer the handshake with 403
            await send({"type": "websocket.close", "code": 1008, "reason": code})
            return
        body = json.dumps({"error": {"status": status, "code": code, "message": problem}}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def host_allowed(self, header: str) -> bool:
        name = host_name(header)
        return name is not None and (name in self.allow_hosts or name in LOOPBACK_NAMES or is_loopback(name))

    def origin_allowed(self, origin: str | None, host: str, required: bool) -> bool:
        if self.any_origin:
            return True
        if origin is None:
            return not required
        origin = origin.strip().rstrip("/").lower()
        if origin in self.allow_origins:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:       # e.g. "http://[::1" (a bracket left open)
            return False
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host.strip().lower()
