"""A Redis server of a test's own, on a free port and keeping nothing on disk, so the test can take it away
(`SHUTDOWN NOSAVE`: every key is lost, as when a cache node dies) and start it again on the same port
without disturbing the shared Redis other tests and workers use."""
from __future__ import annotations

import shutil
import subprocess
import time

import redis

from tests.support.infra import free_port


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", "/tmp", "--dbfilename", f"avatar-test-{self.port}.rdb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return self
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start")
                time.sleep(0.05)

    def shutdown(self) -> None:
        """SHUTDOWN NOSAVE: the server exits and its data is gone."""
        if self.process is None:
            return
        try:
            redis.Redis(port=self.port, socket_timeout=2).shutdown(nosave=True)
        except redis.RedisError:  # the connection closes as the server exits
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        self.shutdown()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()
