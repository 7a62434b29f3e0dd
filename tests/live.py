"""Serve an app on 127.0.0.1 (a free port) in a background thread, for browser and client tests."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from werkzeug.serving import make_server


@contextmanager
def serve(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
