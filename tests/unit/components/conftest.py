"""A real S3 API (moto's threaded server) for the component tests."""
from __future__ import annotations

import pytest
from component_harness import S3


@pytest.fixture(scope="session")
def s3() -> S3:
    from minio import Minio
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = Minio(f"{host}:{port}", access_key="avatar-test", secret_key="avatar-test-secret", secure=False)
    yield S3(f"http://{host}:{port}", "avatar-test", "avatar-test-secret", client)
    server.stop()
