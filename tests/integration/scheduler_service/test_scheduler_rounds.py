"""How often the scheduling loop runs: wakes under load share rounds, a lone wake is answered at once."""
from __future__ import annotations

import asyncio
import time

from services.scheduler import metrics as m
from services.scheduler.main import create_app
from tests.support.infra import wait_until
from tests.support.services import running_service


def rounds() -> float:
    return sum(sample.value for metric in m.ITERATION_SECONDS.collect() for sample in metric.samples
               if sample.name.endswith("_count"))


async def _rounds_for_wakes(scheduler_settings, min_round: float) -> tuple[float, float]:
    """(rounds during 100 wakes 10 ms apart, seconds from a lone wake after a quiet spell to its round)"""
    settings = scheduler_settings(scheduler_min_round_seconds=min_round, scheduler_tick_seconds=60)
    async with running_service(create_app, settings) as service:
        state = service.app.state.scheduler
        await wait_until(lambda: state.leadership.leading, message="leadership")
        await asyncio.sleep(0.3)  # the first rounds of a new leader are over
        before = rounds()
        for _ in range(100):
            state.engine.wake()
            await asyncio.sleep(0.01)
        await asyncio.sleep(min_round + 0.3)  # the last wake's round
        during = rounds() - before
        await asyncio.sleep(min_round + 0.2)  # quiet
        quiet, woken_at = rounds(), time.monotonic()
        state.engine.wake()
        await wait_until(lambda: rounds() > quiet, timeout=5, interval=0.005, message="the lone wake's round")
        return during, time.monotonic() - woken_at


async def test_wakes_in_quick_succession_share_rounds_and_a_lone_wake_is_answered_at_once(scheduler_settings):
    every_wake, every_wake_lone = await _rounds_for_wakes(scheduler_settings, 0.0)
    capped, capped_lone = await _rounds_for_wakes(scheduler_settings, 0.25)
    # about 1.3 s of wakes: at most one round per 0.25 s (and the one after the last wake)
    assert capped <= 1.3 / 0.25 + 2, capped
    assert every_wake >= 3 * capped, (every_wake, capped)  # without the floor each wake could have a round
    assert capped_lone < 0.2 and every_wake_lone < 0.2, (capped_lone, every_wake_lone)
