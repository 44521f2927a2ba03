"""A service stopped right after it started stops: its background loops end with it."""
import asyncio

from tests.integration.approval.saga import trainer_service


async def test_a_service_stopped_at_once_after_starting_stops(fresh):
    # The DLQ-depth loop's first AMQP declare is in flight at that moment; the AMQP client swallowed the
    # shutdown's cancel and the loop went on sleeping, so the shutdown waited for ever.
    async def start_and_stop():
        async with trainer_service(fresh):
            pass

    for _ in range(3):
        await asyncio.wait_for(start_and_stop(), timeout=20)
