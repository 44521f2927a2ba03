"""Run logs (SC-05): spooled to a file and mirrored to a capped Redis stream while the component
runs (any replica can serve the live view), uploaded to the logs bucket when it ends.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator

from minio import Minio

log = logging.getLogger(__name__)
MAX_LINE_CHARS = 8192
LIVE_TTL_SECONDS = 600  # the live copy outlives the run briefly; the object store has the whole log


def live_key(prefix: str, run_id: str) -> str:
    return f"{prefix}log:{run_id}"


class RunLog:
    """The log of one run while it runs."""

    def __init__(self, spool_dir: Path, run_id: str, redis: Any, prefix: str, *, max_bytes: int,
                 live_lines: int) -> None:
        safe = run_id.replace("/", "_").replace(":", "_").replace("#", "_")
        self.path = spool_dir / f"{safe}.log"
        self._redis = redis
        self._key = live_key(prefix, run_id)
        self._max_bytes = max_bytes
        self._live_lines = live_lines
        self._written = 0
        self.lines = 0
        self._truncated = False
        self.last_line: str | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")

    async def reset_live(self) -> None:
        try:
            await self._redis.delete(self._key)
        except Exception as exc:  # the live view is a convenience; the spool is the record
            log.debug("cannot reset live log %s: %s", self._key, exc)

    async def write(self, lines: list[str]) -> None:
        if not lines:
            return
        lines = [line[:MAX_LINE_CHARS] for line in lines]
        self.lines += len(lines)
        for line in reversed(lines):
            if line.strip():
                self.last_line = line.strip()
                break
        data = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
        if self._written + len(data) <= self._max_bytes:
            self._file.write(data)
            self._written += len(data)
        elif not self._truncated:
            self._truncated = True
            self._file.write(f"[log truncated at {self._max_bytes} bytes]\n".encode())
        self._file.flush()
        try:
            pipe = self._redis.pipeline(transaction=False)
            for line in lines:
                pipe.xadd(self._key, {"l": line}, maxlen=self._live_lines, approximate=True)
            await pipe.execute()
        except Exception as exc:
            log.debug("live log %s not mirrored: %s", self._key, exc)

    async def finish(self) -> None:
        self._file.close()
        try:
            await self._redis.expire(self._key, LIVE_TTL_SECONDS)
        except Exception as exc:
            log.debug("cannot expire live log %s: %s", self._key, exc)

    async def upload(self, client: Minio, bucket: str, key: str) -> str:
        await asyncio.to_thread(client.fput_object, bucket, key, str(self.path), content_type="text/plain; charset=utf-8")
        return f"s3://{bucket}/{key}"

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


async def collect(lines: AsyncIterator[str], sink: RunLog, *, batch: int = 200, every: float = 0.2) -> None:
    """Copy a run's lines into its log, in small batches (a chatty component costs few round trips)."""
    pending: list[str] = []
    loop = asyncio.get_running_loop()
    flushed_at = loop.time()
    async for line in lines:
        pending.append(line.rstrip("\r\n"))
        if len(pending) >= batch or loop.time() - flushed_at >= every:
            await sink.write(pending)
            pending, flushed_at = [], loop.time()
    await sink.write(pending)


async def live_lines(redis: Any, prefix: str, run_id: str, *, follow: bool, still_running,
                     block_ms: int = 1000) -> AsyncIterator[str]:
    """The live copy of a run's log; with `follow`, keep reading until `still_running()` is False."""
    key = live_key(prefix, run_id)
    last = "-"
    for entry_id, fields in await redis.xrange(key, "-", "+"):
        last = entry_id
        yield _line(fields)
    if not follow:
        return
    cursor = last if last != "-" else "0-0"
    while True:
        found = await redis.xread({key: cursor}, block=block_ms, count=500)
        if found:
            for _, entries in found:
                for entry_id, fields in entries:
                    cursor = entry_id
                    yield _line(fields)
            continue
        if not await still_running():
            return


def _line(fields: dict) -> str:
    value = fields.get(b"l", fields.get("l", b""))
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def stored_chunks(client: Minio, url: str, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """Stream a stored log from the object store without reading it whole."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    response = await asyncio.to_thread(client.get_object, bucket, key)
    try:
        while True:
            data = await asyncio.to_thread(response.read, chunk)
            if not data:
                return
            yield data
    finally:
        response.close()
        response.release_conn()


async def read_json(client: Minio, bucket: str, key: str, *, limit: int = 16 * 1024 * 1024) -> dict | None:
    """A small JSON object (metrics.json), or None when absent or unreadable."""
    def _read() -> bytes | None:
        from minio.error import S3Error

        try:
            response = client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return None
            raise
        try:
            return response.read(limit + 1)
        finally:
            response.close()
            response.release_conn()

    data = await asyncio.to_thread(_read)
    if data is None or len(data) > limit:
        return None
    try:
        value = json.loads(io.BytesIO(data).read())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
