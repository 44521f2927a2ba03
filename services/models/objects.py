"""The object store as the models service uses it: list staged outputs, copy one file with checksums
and verify the copy, stream reads. Blocking minio calls; the async callers run them in threads.

Copying streams the staged object through this process part by part (memory ≈ parts in flight ×
part size), hashing as it goes: sha256 of the whole file (what we record and serve) and the md5 of
every uploaded part. The server computes the same md5s on what it received, so comparing the stored
object's ETag and size (one HEAD) with ours verifies the copy without reading it back. Objects whose
ETag is not an MD5 (server-side encryption) are verified by re-reading them and comparing sha256.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Iterator

import urllib3
from minio import Minio
from minio.error import S3Error
from urllib3.util import Retry, Timeout

from services.kit.objectstore import make_client
from services.models.settings import ModelsSettings
from services.models.domain import etag_is_md5, multipart_etag, part_size_for

READ_CHUNK = 1024 * 1024


class CopyAborted(Exception):
    """The service is stopping: the copy was abandoned (the multipart upload is aborted)."""


class VerificationFailed(Exception):
    """The stored copy does not match what was read from staging."""


@dataclass(frozen=True)
class StagedObject:
    key: str
    size: int


@dataclass(frozen=True)
class StoredObject:
    size: int
    sha256: str
    etag: str
    verified_by: str  # "etag" | "reread"


def build_client(settings: ModelsSettings) -> Minio:
    parallel = settings.models_store_concurrency * settings.models_parallel_parts
    http = urllib3.PoolManager(
        timeout=Timeout(connect=settings.models_s3_connect_timeout, read=settings.models_s3_read_timeout),
        maxsize=max(10, parallel + 8), cert_reqs="CERT_REQUIRED",
        # a short, bounded retry inside one attempt; outages are handled by the store worker's backoff
        retries=Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return make_client(settings, http_client=http)


class HashingReader:
    """A file-like view of a streamed GET that hashes what passes through, part by part."""

    def __init__(self, response: urllib3.BaseHTTPResponse, part_size: int, stop: threading.Event | None) -> None:
        self._response = response
        self._part_size = part_size
        self._stop = stop
        self._sha256 = hashlib.sha256()
        self._part_md5 = hashlib.md5()
        self._in_part = 0
        self.part_md5s: list[bytes] = []
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if self._stop is not None and self._stop.is_set():
            raise CopyAborted("service stopping")
        wanted = size if size >= 0 else self._part_size
        chunks, got = [], 0
        while got < wanted:  # small reads: one big read costs several part-sized copies inside http.client
            chunk = self._response.read(min(wanted - got, READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._account(data)
        return data

    def _account(self, data: bytes) -> None:
        self._sha256.update(data)
        self.read_bytes += len(data)
        view, offset = memoryview(data), 0
        while offset < len(view):
            take = min(len(view) - offset, self._part_size - self._in_part)
            self._part_md5.update(view[offset:offset + take])
            self._in_part += take
            offset += take
            if self._in_part == self._part_size:
                self.part_md5s.append(self._part_md5.digest())
                self._part_md5, self._in_part = hashlib.md5(), 0

    def finish(self) -> tuple[str, str]:
        """(sha256 hex, the ETag the server should report)."""
        if self._in_part or not self.part_md5s:
            self.part_md5s.append(self._part_md5.digest())
            self._part_md5, self._in_part = hashlib.md5(), 0
        return self._sha256.hexdigest(), multipart_etag(self.part_md5s)


class ObjectStore:
    def __init__(self, client: Minio, settings: ModelsSettings) -> None:
        self.client = client
        self.part_size = settings.models_part_size
        self.parallel_parts = settings.models_parallel_parts
        self._buckets_ready: set[str] = set()

    def ensure_bucket(self, bucket: str) -> None:
        if bucket in self._buckets_ready:
            return
        if not self.client.bucket_exists(bucket):
            try:
                self.client.make_bucket(bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._buckets_ready.add(bucket)

    def list_staged(self, bucket: str, prefix: str) -> list[StagedObject]:
        return [StagedObject(obj.object_name, obj.size or 0)
                for obj in self.client.list_objects(bucket, prefix=prefix, recursive=True)
                if not obj.is_dir]

    def copy_verified(self, source_bucket: str, source_key: str, bucket: str, key: str, size: int,
                      stop: threading.Event | None = None) -> StoredObject:
        part_size = part_size_for(size, self.part_size)
        response = self.client.get_object(source_bucket, source_key)
        try:
            reader = HashingReader(response, part_size, stop)
            # with the length known, minio cuts parts at exact multiples of part_size, as the reader does
            self.client.put_object(bucket, key, reader, size, part_size=part_size,
                                   num_parallel_uploads=self.parallel_parts)
            if response.read(1):
                raise VerificationFailed(f"s3://{source_bucket}/{source_key} grew during the copy")
        finally:
            response.close()
            response.release_conn()
        sha256, expected_etag = reader.finish()
        if reader.read_bytes != size:
            raise VerificationFailed(f"read {reader.read_bytes} bytes of s3://{source_bucket}/{source_key}, "
                                     f"listed as {size}")
        return self.verify(bucket, key, size, sha256, expected_etag)

    def verify(self, bucket: str, key: str, size: int, sha256: str, expected_etag: str) -> StoredObject:
        stat = self.client.stat_object(bucket, key)
        etag = (stat.etag or "").strip('"').lower()
        if stat.size != size:
            raise VerificationFailed(f"stored s3://{bucket}/{key} has {stat.size} bytes, expected {size}")
        if etag_is_md5(etag):
            if etag != expected_etag:
                raise VerificationFailed(f"stored s3://{bucket}/{key} has ETag {etag}, expected {expected_etag}")
            return StoredObject(size, sha256, etag, "etag")
        digest = hashlib.sha256()
        for chunk in self.read_chunks(bucket, key):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise VerificationFailed(f"stored s3://{bucket}/{key} reads back with a different sha256")
        return StoredObject(size, sha256, etag, "reread")

    def read_chunks(self, bucket: str, key: str) -> Iterator[bytes]:
        response = self.client.get_object(bucket, key)
        try:
            yield from response.stream(READ_CHUNK)
        finally:
            response.close()
            response.release_conn()

    def open(self, bucket: str, key: str, offset: int = 0, length: int = 0) -> urllib3.BaseHTTPResponse:
        return self.client.get_object(bucket, key, offset=offset, length=length)

    def remove(self, bucket: str, keys: list[str]) -> list[str]:
        """Delete keys; returns the ones the server refused."""
        from minio.deleteobjects import DeleteObject

        errors = self.client.remove_objects(bucket, [DeleteObject(k) for k in keys])
        return [error.name for error in errors]
