"""How often the scheduling loop runs: wakes under load share rounds, a lone wake is answered at once."""
from __future__ import annotations

import asyncio
import time

from contracts.events import WorkloadApproved
from services.kit import metrics as kit_metrics
from services.scheduler import metrics as m
from services.scheduler.main import create_app
from services.scheduler.store import WAKE_CHANNEL
from tests.integration.scheduler_service.support import component, register, workload
from tests.support.infra import wait_until
from tests.support.services import running_service


def wakeups(delivery: str) -> float:
    return kit_metrics.WAKEUPS.labels("scheduler", WAKE_CHANNEL, delivery)._value.get()


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


async def test_an_approval_wakes_the_leading_replicas_loop_without_a_notify(scheduler_settings, publish, tap):
    """The loop's timer is a minute here: only the wake-up after the approval's commit can start the
    workload in time; the approval was consumed by the replica that leads, so it is woken directly."""
    settings = scheduler_settings(scheduler_tick_seconds=60, scheduler_reconcile_seconds=60)
    async with running_service(create_app, settings) as scheduler:
        await wait_until(lambda: scheduler.app.state.scheduler.leadership.leading, message="leadership")
        await register(publish, scheduler, "CL-PROBE")
        await asyncio.sleep(0.5)  # the first rounds of a new leader are over
        local, notified = wakeups("local"), wakeups("notify")
        await publish("workload.approved", WorkloadApproved(
            workload_id="WL-WOKEN", auto=True, workload=workload("WL-WOKEN", component("CL-PROBE"))),
            correlation_id="WL-WOKEN")
        await tap.wait_for("workload.started", "WL-WOKEN", timeout=10)
        assert wakeups("local") > local
        assert wakeups("notify") == notified
