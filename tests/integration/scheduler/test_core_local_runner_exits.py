"""How the local runner's exit-status wrapper reports a run's end, watched or adopted after a restart."""
from __future__ import annotations

import asyncio
import os
import sys

import psutil
import pytest

from services.scheduler.core.runners.base import FAILED, SUCCEEDED, ComponentRun
from services.scheduler.core.runners.local import LocalRunner
from tests.support.infra import wait_until


@pytest.fixture
async def make_runner(tmp_path, request):
    made: list[LocalRunner] = []

    def make() -> LocalRunner:
        runner = LocalRunner(state_dir=tmp_path / "runs", runner_id=f"exits-{os.getpid()}-{request.node.name}",
                             stop_grace_seconds=1.0)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        for run_id in await runner.list_live():  # nothing left behind, even when a test fails
            handle = await runner.attach(run_id)
            if handle:
                await runner.stop(handle, grace_seconds=0.5)
        await runner.close()


@pytest.mark.parametrize("code", [147, 148, 149, 150])
async def test_an_exit_code_that_names_a_stop_signal_is_a_plain_exit_code(make_runner, code):
    """128 + SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU: re-raised on the wrapper sh they would stop it, and the run
    would never end."""
    runner = make_runner()
    handle = await runner.start(ComponentRun("wl-exit", "c1", "c1", command=("sh", "-c", f"exit {code}")))
    outcome = await asyncio.wait_for(runner.wait(handle), timeout=10)
    assert (outcome.exit_code, outcome.reason) == (code, f"{FAILED}: exit code {code}")


async def test_a_command_killed_by_a_signal_is_reported_as_killed_by_it(make_runner):
    runner = make_runner()
    handle = await runner.start(ComponentRun("wl-exit", "c2", "c2", command=(
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")))
    outcome = await asyncio.wait_for(runner.wait(handle), timeout=10)
    assert (outcome.exit_code, outcome.reason) == (-15, f"{FAILED}: killed by SIGTERM")


ESCAPEE = """
import os, sys, time
if os.fork() == 0:  # a helper that leaves the run's process group and outlives the command
    os.setsid()
    time.sleep(60)
    sys.exit(0)
time.sleep(2)
sys.exit(3)
"""


async def test_an_adopted_run_ends_with_its_wrapper_and_what_it_left_is_stopped(make_runner):
    first = make_runner()
    handle = await first.start(ComponentRun("wl-adopt", "c3", "c3", command=(sys.executable, "-c", ESCAPEE)))
    await wait_until(lambda: len(_tagged(handle.run_id)) >= 3, message="the wrapper, the command and its helper")
    await first.close()  # the scheduler restarts: the run goes on

    second = make_runner()
    adopted = await second.attach(handle.run_id)
    assert adopted is not None
    # the wrapper's end is the run's end: the escaped helper does not keep it going for a minute
    outcome = await asyncio.wait_for(second.wait(adopted), timeout=15)
    assert (outcome.exit_code, outcome.reason) == (3, f"{FAILED}: exit code 3")
    await wait_until(lambda: not _tagged(handle.run_id), timeout=10, message="nothing of the run left")


async def test_an_adopted_run_that_ended_while_nobody_watched_reports_its_exit_code(make_runner):
    first = make_runner()
    handle = await first.start(ComponentRun("wl-adopt", "c4", "c4", command=(sys.executable, "-c", "print('ok')")))
    await first.close()
    await wait_until(lambda: not _tagged(handle.run_id), timeout=10, message="the run's end")
    second = make_runner()
    adopted = await second.attach(handle.run_id)
    outcome = await asyncio.wait_for(second.wait(adopted), timeout=10)
    assert (outcome.exit_code, outcome.reason) == (0, SUCCEEDED)


def _tagged(run_id: str) -> list[int]:
    """Live processes carrying the run's marker."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get("AVATAR_RUN_ID") == run_id:
                found.append(process.pid)
        except psutil.Error:
            continue
    return found
