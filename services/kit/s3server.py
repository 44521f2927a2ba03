"""The S3 server that stands in for MinIO where none can be installed (docs/architecture.md §9).

moto's S3 backend, served on its own by waitress:
- only S3: moto's own server (`moto.server`, `ThreadedMotoServer`) dispatches every request among all of
  moto's ~180 services, listing moto's package directory and trying its URL patterns each time, under one lock;
- waitress keeps HTTP/1.1 connections alive and serves from a fixed pool of threads, where werkzeug's
  development server closes every connection and starts a thread per request.
Same S3 behaviour at a fraction of the CPU per request (figures: bench/RESULTS.md, bench_s3).
The platform only ever speaks S3 through the `minio` SDK, so a real MinIO (deploy/) replaces it unchanged.

    python -m services.kit.s3server --host 127.0.0.1 --port 9000    # `make up` starts it so

In-process (tests): `S3Server(port=0).start()` ... `.stop()`; every in-process server shares moto's one
backend, so a server stopped and started again on the same port still holds what was stored.
"""
from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

S3_SINGLE_PUT_LIMIT = 5 * 1024**3  # S3 refuses a single PUT above 5 GiB; larger objects come in parts


def create_app() -> Any:
    """moto's S3 backend as a WSGI app (imported here: moto is large and only this process needs it)."""
    from moto.core import errors
    from moto.moto_server.werkzeug_app import create_backend_app

    # every error response (a 404 for an absent object is the common one) built a new lookup factory and
    # with it the error table of the whole S3 model: one factory, so its per-service cache is kept
    shared = errors.ErrorLookupFactory()
    errors.ErrorLookupFactory = lambda: shared  # type: ignore[assignment,misc]
    return create_backend_app("s3")


class S3Server:
    """The stand-in on a loopback port, served from a thread of this process until `stop`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, threads: int = 8) -> None:
        from waitress.server import create_server

        self._server = create_server(create_app(), host=host, port=port, threads=threads, connection_limit=500,
                                     max_request_body_size=S3_SINGLE_PUT_LIMIT, ident="avatar-s3")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def endpoint(self) -> str:
        return f"http://{self._server.effective_host}:{self.port}"

    def start(self) -> "S3Server":
        self._thread = threading.Thread(target=self._serve, name=f"s3-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._serve()

    def _serve(self) -> None:
        from waitress import wasyncore

        # one poll at a time, so that `stop` (which wakes the poll) ends the loop at once
        while not self._stopping.is_set():
            wasyncore.loop(timeout=1.0, map=self._server._map, count=1)
        # every connection and the listening socket go: clients are refused, as by a server that died
        wasyncore.close_all(self._server._map)
        self._server.task_dispatcher.shutdown()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._server.pull_trigger()  # wakes the poll at once
        except OSError:
            # the trigger closed itself (its pipe reported an error to the poll): the loop still sees
            # `_stopping` within its one-second poll
            log.warning("S3 stand-in on port %s: its wake-up pipe is gone; stopping within a second", self.port)
        if self._thread is not None:
            self._thread.join(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="S3 stand-in for MinIO: moto's S3 backend served by waitress")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    server = S3Server(args.host, args.port, threads=args.threads)
    print(f"S3 stand-in (moto S3 backend, waitress) on {server.endpoint}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
