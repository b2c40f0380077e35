"""Run the app with uvicorn in a background thread on a free loopback port (tests, benchmarks, notebooks).

    >>> with serve_in_thread(create_app(settings)) as server:
    ...     requests.get(server.url + "/healthz")
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass


@dataclass
class RunningServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0, log_level: str = "warning"):
    """Start uvicorn serving ``app`` in a thread; yields a :class:`RunningServer`; stops it on exit.

    The limits of ``app.state.settings`` (message size, header deadline...) apply as with ``emolens serve``.
    """
    import uvicorn

    from .config import ServeSettings
    from .limits import uvicorn_options

    settings = getattr(getattr(app, "state", None), "settings", None) or ServeSettings()
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", ws_ping_interval=None,
                            **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="emolens-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server thread stopped while starting (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server did not start within {timeout} s")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield RunningServer(host=host, port=int(bound[1]))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
