"""The S3 stand-in (services/kit/s3server.py): S3 through the minio SDK, kept-alive connections, a clean stop."""
from __future__ import annotations

import http.client
import io
import os
import socket
import uuid

import pytest
from minio import Minio
from minio.error import S3Error

from services.kit.s3server import S3Server


@pytest.fixture
def server():
    server = S3Server(port=0).start()
    yield server
    server.stop()


def client_of(server: S3Server) -> Minio:
    return Minio(f"127.0.0.1:{server.port}", access_key="avatar-test", secret_key="avatar-test-secret", secure=False)


def test_objects_round_trip_through_the_minio_sdk(server):
    s3, bucket = client_of(server), f"b-{uuid.uuid4().hex[:12]}"
    s3.make_bucket(bucket)
    small, large = b"metrics", os.urandom(11 * 1024 * 1024)  # the large one goes up in 5 MiB parts
    s3.put_object(bucket, "w1/c1/metrics.json", io.BytesIO(small), len(small))
    s3.put_object(bucket, "w1/c1/policy.bin", io.BytesIO(large), -1, part_size=5 * 1024 * 1024)
    s3.put_object(bucket, "w2/other", io.BytesIO(b"x"), 1)

    listed = {o.object_name: o.size for o in s3.list_objects(bucket, prefix="w1/", recursive=True)}
    assert listed == {"w1/c1/metrics.json": len(small), "w1/c1/policy.bin": len(large)}
    response = s3.get_object(bucket, "w1/c1/policy.bin", offset=1024, length=4096)
    try:
        assert response.read() == large[1024:1024 + 4096]
    finally:
        response.close()
        response.release_conn()
    with pytest.raises(S3Error) as missing:
        s3.stat_object(bucket, "w1/c1/absent")
    assert missing.value.code in ("NoSuchKey", "ResponseError")
    s3.remove_object(bucket, "w2/other")
    assert [o.object_name for o in s3.list_objects(bucket, prefix="w2/")] == []


def test_one_connection_serves_many_requests(server):
    # the reason it exists: werkzeug's server (moto's own) answers every request with Connection: close
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("HEAD", "/no-such-bucket")
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        assert first.status == 404 and first.getheader("Connection", "").lower() != "close" and sock is not None
        connection.request("HEAD", "/no-such-bucket")
        second = connection.getresponse()
        second.read()
        assert second.status == 404 and connection.sock is sock
    finally:
        connection.close()


def test_stop_refuses_connections_and_a_restart_on_the_port_still_holds_the_objects():
    first = S3Server(port=0).start()
    port, bucket = first.port, f"b-{uuid.uuid4().hex[:12]}"
    s3 = client_of(first)
    s3.make_bucket(bucket)
    s3.put_object(bucket, "kept", io.BytesIO(b"kept"), 4)
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.request("HEAD", f"/{bucket}")
    idle.getresponse().read()
    first.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):  # the kept-alive one was closed too
        idle.request("HEAD", f"/{bucket}")
        idle.getresponse()
    idle.close()

    again = S3Server(port=port).start()
    try:
        response = client_of(again).get_object(bucket, "kept")
        assert response.read() == b"kept"
        response.close()
        response.release_conn()
    finally:
        again.stop()
