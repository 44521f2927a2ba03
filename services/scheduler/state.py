"""What the HTTP routes reach: built once by the composition root, kept on app.state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minio import Minio

from services.scheduler.core.allocator import RedisAllocator
from services.scheduler.core.queue import RedisPriorityQueue
from services.scheduler.engine import Engine
from services.scheduler.leader import Leadership
from services.scheduler.settings import SchedulerSettings


@dataclass
class SchedulerState:
    settings: SchedulerSettings
    redis: Any
    allocator: RedisAllocator
    queue: RedisPriorityQueue
    objects: Minio
    engine: Engine
    leadership: Leadership
    log_tails: Any  # a Redis client of their own for followed logs: each holds a connection in XREAD BLOCK
