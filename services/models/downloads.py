"""Streaming stored files out of the object store: one file (optionally a byte range) or a tar of the model.

Memory stays flat: a download holds at most two chunks, the next one being read from the store in a
thread while the event loop sends the current one; the sender waits for the client (uvicorn's flow
control), so a slow client slows the reads instead of filling memory.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import AsyncIterator

import urllib3
from minio.error import S3Error

from services.models import metrics
from services.models.archive import ArchiveEntry
from services.models.objects import READ_CHUNK, ObjectStore


class StoreUnavailable(Exception):
    """The object store did not answer (or answered with an error): the download cannot start."""


class MissingObject(Exception):
    """The object store answered, and the object is not there."""


class Streamer:
    def __init__(self, objects: ObjectStore, bucket: str, executor: Executor, chunk: int = READ_CHUNK) -> None:
        self.objects = objects
        self.bucket = bucket
        self.executor = executor
        self.chunk = chunk

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def open(self, key: str, offset: int = 0, length: int = 0, *,
                   bucket: str | None = None) -> urllib3.BaseHTTPResponse:
        """Open the object before answering, so an unreachable store is a 503, not a truncated body."""
        try:
            return await self._run(self.objects.open, bucket or self.bucket, key, offset, length)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise MissingObject(f"s3://{bucket or self.bucket}/{key} does not exist") from exc
            raise StoreUnavailable(f"the object store refused {key}: {exc.code}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"the object store is unreachable: {type(exc).__name__}") from exc

    async def open_whole(self, key: str, *, bucket: str | None = None) -> tuple[int, urllib3.BaseHTTPResponse]:
        """An object whose size is not recorded here (a run log): its size from the GET's Content-Length."""
        response = await self.open(key, bucket=bucket)
        return int(response.headers.get("content-length", 0)), response

    async def body(self, response: urllib3.BaseHTTPResponse, expected: int) -> AsyncIterator[bytes]:
        """The object's bytes; the next chunk is read from the store while the current one is sent."""
        loop, sent = asyncio.get_running_loop(), 0
        pending = loop.run_in_executor(self.executor, response.read, self.chunk)
        try:
            while chunk := await pending:
                pending = loop.run_in_executor(self.executor, response.read, self.chunk)
                sent += len(chunk)
                metrics.DOWNLOADED_BYTES.inc(len(chunk))
                yield chunk
        finally:
            if not pending.done():  # the client went away mid-read: let the read fail quietly
                pending.add_done_callback(lambda f: f.cancelled() or f.exception())
            response.close()
            response.release_conn()
        if sent != expected:  # aborts the connection: the client must not take a short file for a whole one
            raise IOError(f"object store sent {sent} bytes, expected {expected}")

    async def archive(self, entries: list[ArchiveEntry], trailer: bytes,
                      first: urllib3.BaseHTTPResponse | None) -> AsyncIterator[bytes]:
        """The tar stream: header, body, padding per member, then the trailer. `first` is already open."""
        for index, entry in enumerate(entries):
            yield entry.header
            response = first if index == 0 and first is not None else await self.open(entry.member.object_key)
            async for chunk in self.body(response, entry.member.size):
                yield chunk
            if entry.padding:
                yield b"\0" * entry.padding
        yield trailer
