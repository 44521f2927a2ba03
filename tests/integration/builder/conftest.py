import pytest

from tests.integration.library.support import library_and_builder
from tests.support.services import purge_queues


@pytest.fixture(scope="module")
async def stack(infra):
    """One library and one builder for a whole module: each test works on Apps of its own."""
    await infra.fresh_database()
    await purge_queues(infra.rabbitmq_url)
    async with library_and_builder(infra.settings()) as pair:
        yield pair
