"""Run a service's real app in-process (lifespan and all) and talk to it over HTTP."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import aio_pika
import httpx
from fastapi import FastAPI

from contracts.topology import DEAD_LETTER_EXCHANGE, SUBSCRIPTIONS, dead_letter_queue, queue_name
from services.kit.auth import Role, mint_token
from services.kit.settings import Settings


def auth(settings: Settings, role: Role = "admin", user: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user or f'{role}-user', role)}"}


@dataclass
class RunningService:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    @property
    def platform(self):
        return self.app.state.platform

    def headers(self, role: Role = "admin", user: str | None = None) -> dict[str, str]:
        return auth(self.settings, role, user)


@contextlib.asynccontextmanager
async def running_service(create_app: Callable[[Settings], FastAPI], settings: Settings) -> AsyncIterator[RunningService]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            yield RunningService(app, client, app.state.settings)


async def purge_queues(rabbitmq_url: str) -> None:
    """Empty every service queue and DLQ of the test vhost, so a test starts from a quiet broker."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        for service in SUBSCRIPTIONS:
            for name, args in ((queue_name(service), {"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                                                       "x-dead-letter-routing-key": service}),
                               (dead_letter_queue(service), None)):
                queue = await channel.declare_queue(name, durable=True, arguments=args)
                await queue.purge()
