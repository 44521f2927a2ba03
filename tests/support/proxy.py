"""A TCP forwarder owned by a test, standing between one service and a server (e.g. the models service
and S3), so the test can take the server away from that service alone and give it back.

`cut()` is what a service sees when the server's host goes down: new connections are refused (nothing
listens on the port any more) and the connections it holds are cut. The server itself keeps running and
keeps its data, and every other client, which does not go through the proxy, still reaches it.
`restore()` listens on the same port again. Threads, not asyncio: a test may block its event loop.
"""
from __future__ import annotations

import socket
import threading

from tests.support.infra import free_port

ACCEPT_POLL = 0.1


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = free_port()
        self.connections = 0  # accepted and forwarded, over the proxy's life
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stop: threading.Event | None = None
        self._open: set[socket.socket] = set()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def start(self) -> "TcpProxy":
        self.restore()
        return self

    def restore(self) -> None:
        """Listen (again) on the proxy's port; a no-op while it is up."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((self.host, self.port))
            except OSError:
                listener.close()
                raise
            listener.listen(128)
            listener.settimeout(ACCEPT_POLL)
            stop = threading.Event()
            self._listener, self._stop = listener, stop
        threading.Thread(target=self._accept, args=(listener, stop), name=f"proxy-{self.port}",
                         daemon=True).start()

    def cut(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection; a no-op while cut."""
        with self._lock:
            listener, stop, self._listener, self._stop = self._listener, self._stop, None, None
            held, self._open = self._open, set()
        if listener is None:
            return
        stop.set()
        listener.close()
        for sock in held:
            _close(sock)


    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed by cut()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if stop.is_set():  # cut while this one was being connected
                    _close(client)
                    _close(upstream)
                    return
                self._open.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:  # either side ending ends the pair (HTTP clients do not half-close)
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv on it
    except OSError:
        pass
    sock.close()
