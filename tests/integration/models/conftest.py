import pytest

from tests.integration.models.helpers import s3_client


@pytest.fixture(scope="session")
def s3(infra):
    return s3_client(infra)
