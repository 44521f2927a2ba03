"""Talking to the real broker as other systems do: publish raw events, watch every event, read a DLQ."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from pydantic import BaseModel

from contracts.events import Event, make_event, parse_event
from services.approval.main import create_app as create_approval
from services.approval.settings import ApprovalSettings
from services.trainer.main import create_app as create_trainer
from tests.support.broker import dead_letters, publish
from tests.support.broker import tapped as tap_broker
from tests.support.infra import Infra, wait_until
from tests.support.services import RunningService, running_service


async def emit(url: str, event_type: str, payload: BaseModel, *, producer: str = "scheduler") -> Event:
    """Publish an event as the service that owns it would (used to play the scheduler's or builder's part)."""
    correlation_id = getattr(payload, "workload_id", None) or getattr(payload, "app_id")
    event = make_event(event_type, payload, producer=producer, correlation_id=correlation_id)
    await publish(url, event_type, event)
    return event


class Tap:
    """Every event published on avatar.events during a test, parsed."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def of(self, event_type: str, workload_id: str | None = None) -> list[Event]:
        return [e for e in self.events
                if e.type == event_type and (workload_id is None or e.correlation_id == workload_id)]

    async def one(self, event_type: str, workload_id: str | None = None, timeout: float = 10.0) -> Event:
        found = await wait_until(lambda: self.of(event_type, workload_id), timeout=timeout,
                                 message=f"{event_type} for {workload_id}")
        return found[0]

    async def settled_count(self, event_type: str, workload_id: str | None = None, quiet: float = 1.2) -> int:
        """The count after the outbox relays had time to publish anything more."""
        await asyncio.sleep(quiet)
        return len(self.of(event_type, workload_id))


@contextlib.asynccontextmanager
async def tapped(url: str) -> AsyncIterator[Tap]:
    tap = Tap()

    def collect(message) -> None:
        with contextlib.suppress(ValueError):  # malformed test messages are not events
            tap.events.append(parse_event(message.body))

    async with tap_broker(url, collect):
        yield tap


def approval_service(infra: Infra, **overrides: Any):
    settings = ApprovalSettings(**{**infra.settings().model_dump(), "loop_test_sweep_seconds": 0.2, **overrides})
    return running_service(create_approval, settings)


def trainer_service(infra: Infra):
    return running_service(create_trainer, infra.settings())


async def approval_status(service: RunningService, workload_id: str, status: str, timeout: float = 10.0) -> dict:
    async def reached():
        response = await service.client.get(f"/approvals/{workload_id}", headers=service.headers("viewer"))
        return response.status_code == 200 and response.json()["status"] == status and response.json()

    return await wait_until(reached, timeout=timeout, message=f"approval {workload_id} to be {status}")


__all__ = ["Tap", "approval_service", "approval_status", "dead_letters", "emit", "publish", "tapped", "trainer_service"]
