import hashlib
import io
import os
import threading

import pytest

from services.models.domain import multipart_etag
from services.models.objects import CopyAborted, HashingReader

PART = 5 * 1024 * 1024


class TrickleResponse(io.BytesIO):
    """Like a streamed HTTP body: returns at most 64 KiB per read."""

    def read(self, size=-1):
        return super().read(min(size, 65536) if size >= 0 else 65536)


@pytest.mark.parametrize("size", [0, 10, PART, PART + 1, 2 * PART + 12345])
def test_reader_returns_whole_parts_and_computes_sha256_and_the_s3_etag(size):
    data = os.urandom(size)
    reader = HashingReader(TrickleResponse(data), PART, None)
    parts = []
    while True:
        part = reader.read(PART)
        if not part:
            break
        parts.append(part)
    assert b"".join(parts) == data and all(len(p) == PART for p in parts[:-1])
    sha256, etag = reader.finish()
    assert sha256 == hashlib.sha256(data).hexdigest()
    expected_parts = [hashlib.md5(data[i:i + PART]).digest() for i in range(0, size, PART)] or [hashlib.md5().digest()]
    assert etag == multipart_etag(expected_parts)


def test_reader_gives_up_when_the_service_stops():
    stop = threading.Event()
    reader = HashingReader(TrickleResponse(b"x" * 100), PART, stop)
    stop.set()
    with pytest.raises(CopyAborted):
        reader.read(10)
