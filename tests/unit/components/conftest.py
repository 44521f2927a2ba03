"""A real S3 API (the S3 stand-in, services/kit/s3server.py) for the component tests."""
from __future__ import annotations

import pytest
from component_harness import S3


@pytest.fixture(scope="session")
def s3() -> S3:
    from minio import Minio
    from services.kit.s3server import S3Server

    server = S3Server(port=0).start()
    client = Minio(f"127.0.0.1:{server.port}", access_key="avatar-test", secret_key="avatar-test-secret",
                   secure=False)
    yield S3(server.endpoint, "avatar-test", "avatar-test-secret", client)
    server.stop()
