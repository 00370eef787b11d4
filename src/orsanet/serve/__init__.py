"""``orsanet serve``: a REST API and a web page (photos and the live camera) over a ``Recognizer``.

    >>> from orsanet.serve import create_app, run
    >>> run()                                   # http://127.0.0.1:8000/ , the API under /v1, docs at /docs
    >>> app = create_app(max_upload_mb=5)       # the ASGI app, for any ASGI server or a test client

See ``orsanet.serve.app`` for the routes and the limits, ``orsanet.serve.batcher`` for the model queue.
"""

from __future__ import annotations

import logging

from orsanet.serve.app import Limits, create_app

__all__ = ["Limits", "create_app", "run"]

log = logging.getLogger(__name__)


def run(host: str = "127.0.0.1", port: int = 8000, model: str = "default", device: str = "cpu",
        log_level: str = "info", **limits) -> None:
    """Serve until interrupted. Only this machine can connect unless ``host`` says otherwise
    (``"0.0.0.0"``: every network interface). ``limits``: see ``create_app`` (a ``recognizer=``
    already loaded may be passed as well)."""
    import uvicorn

    app = create_app(model=model, device=device, **limits)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: other machines can reach the server", host)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
