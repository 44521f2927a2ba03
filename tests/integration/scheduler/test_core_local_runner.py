import asyncio
import hashlib
import os
import sys
import time

import pytest

from services.scheduler.core.runners.base import LOST, STOPPED, SUCCEEDED, ComponentRun, RunnerError
from services.scheduler.core.runners.local import LocalRunner


@pytest.fixture
def lines():
    return []


@pytest.fixture
async def runner(tmp_path, lines, request):
    r = LocalRunner(state_dir=tmp_path / "runs", log_sink=lambda run_id, line: lines.append((run_id, line)),
                    runner_id=f"test-{os.getpid()}-{request.node.name}", stop_grace_seconds=2.0)
    yield r
    for run_id in await r.list_live():  # never leave processes behind, even when a test fails
        handle = await r.attach(run_id)
        if handle:
            await r.stop(handle, grace_seconds=0.5)
    await r.close()


def group_members(pgid: int, *, include_zombies: bool) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        if int(fields[2]) == pgid and (include_zombies or fields[0] not in "ZX"):
            found.append(int(name))
    return found


def run(component, *command, gpus=(), env=None):
    return ComponentRun("wl-1", component, component, command=command, gpu_indices=gpus, env=env or {})


async def test_success_sets_cuda_visible_devices_env_and_collects_logs(runner, lines):
    code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES']); print(os.environ['GREETING'])"
    handle = await runner.start(run("c1", "python", "-c", code, gpus=(1, 3), env={"GREETING": "hello"}))
    outcome = await runner.wait(handle)
    assert outcome.exit_code == 0 and outcome.reason == SUCCEEDED and outcome.succeeded
    assert lines == [("wl-1.c1", "1,3"), ("wl-1.c1", "hello")]
    assert [line async for line in runner.logs(handle)] == ["1,3", "hello"]


async def test_no_gpus_means_no_visible_devices_and_no_scheduler_secrets(runner, lines, monkeypatch):
    monkeypatch.setenv("AVATAR_DB_PASSWORD", "secret")
    code = "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES'])); print(os.environ.get('AVATAR_DB_PASSWORD'))"
    await runner.wait(await runner.start(run("c1", "python", "-c", code)))
    assert [line for _, line in lines] == ["''", "None"]


async def test_non_zero_exit_is_reported_with_stderr_in_the_log(runner, lines):
    code = "import sys; print('about to fail', file=sys.stderr); sys.exit(7)"
    outcome = await runner.wait(await runner.start(run("bad", sys.executable, "-c", code)))
    assert outcome.exit_code == 7 and outcome.reason == "failed: exit code 7" and not outcome.succeeded
    assert lines == [("wl-1.bad", "about to fail")]


async def test_a_command_that_cannot_start_raises(runner):
    from services.scheduler.core.runners.base import RunnerError
    with pytest.raises(RunnerError):
        await runner.start(run("x", "/nonexistent/binary"))
    with pytest.raises(RunnerError):
        await runner.start(run("y"))


async def test_stop_kills_the_whole_process_group_and_leaves_nothing(runner, lines):
    # a shell with background children, one of which ignores SIGTERM
    script = ("trap '' TERM; sleep 300 & sleep 300 & "
              "python3 -c 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "print(\"ready\", flush=True); time.sleep(300)'")
    handle = await runner.start(run("sleeper", "sh", "-c", script))
    pgid = int(handle.ref)
    for _ in range(100):
        if lines:
            break
        await asyncio.sleep(0.05)
    assert len(group_members(pgid, include_zombies=False)) >= 3
    assert "wl-1.sleeper" in await runner.list_live()
    started = time.monotonic()
    await runner.stop(handle, grace_seconds=0.5)
    assert time.monotonic() - started < 10
    assert group_members(pgid, include_zombies=False) == []
    outcome = await runner.wait(handle)
    assert outcome.reason == STOPPED
    assert "wl-1.sleeper" not in await runner.list_live()
    deadline = time.monotonic() + 15  # init reaps the orphaned zombies a moment later
    while group_members(pgid, include_zombies=True) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert group_members(pgid, include_zombies=True) == []


async def test_stop_also_finds_children_that_left_the_group(runner):
    script = "setsid sleep 300 & sleep 300"
    handle = await runner.start(run("escape", "sh", "-c", script))
    await asyncio.sleep(0.5)
    await runner.stop(handle, grace_seconds=0.5)
    assert "wl-1.escape" not in await runner.list_live()


async def test_usage_is_measured_not_allocated(runner):
    code = "import time; x = bytearray(80_000_000); t = time.time()\nwhile time.time() - t < 3: pass\ntime.sleep(30)"
    handle = await runner.start(ComponentRun("wl-1", "u", "u", command=("python", "-c", code),
                                             memory_bytes=64 * 10**9, cpu=16))
    await asyncio.sleep(0.6)
    first = await runner.usage(handle)
    await asyncio.sleep(0.6)
    second = await runner.usage(handle)
    assert first is not None and second is not None
    assert 80_000_000 <= second.memory_rss_bytes < 1_000_000_000  # far from the 64 GB allocated
    # a busy loop: CPU time grows (how fast depends on what else this 2-core machine runs)
    assert first.cpu_cores is None and second.cpu_seconds > first.cpu_seconds
    assert second.cpu_cores is not None and 0.05 < second.cpu_cores <= 2.5
    await runner.stop(handle, grace_seconds=0.5)
    assert await runner.usage(handle) is None


async def test_a_restarted_runner_finds_and_adopts_live_runs(tmp_path, runner, lines):
    code = "import time\nfor i in range(3):\n    print('tick', i, flush=True); time.sleep(0.3)\ntime.sleep(30)"
    handle = await runner.start(run("long", "python", "-c", code))
    for _ in range(200):
        if lines:
            break
        await asyncio.sleep(0.02)
    assert lines[0] == ("wl-1.long", "tick 0")
    await runner.close()  # the scheduler "crashes": the process keeps running
    seen = []
    fresh = LocalRunner(state_dir=runner.state_dir, runner_id=runner.runner_id,
                        log_sink=lambda run_id, line: seen.append(line))
    try:
        assert await fresh.list_live() == {"wl-1.long"}
        adopted = await fresh.attach("wl-1.long")
        assert adopted == handle
        await asyncio.sleep(1.2)
        assert "tick 2" in seen and "tick 0" not in seen  # resumes where the last sink stopped
        await fresh.stop(adopted, grace_seconds=0.5)
        assert (await fresh.wait(adopted)).reason == STOPPED
        assert await fresh.list_live() == set()
        assert await fresh.attach("never-started") is None
    finally:
        await fresh.close()


async def test_an_adopted_run_reports_how_it_ended_even_when_it_ended_while_nobody_watched(tmp_path, runner):
    live = await runner.start(run("live", "python", "-c", "import sys, time; time.sleep(0.8); sys.exit(3)"))
    ended = await runner.start(run("ended", "python", "-c", "print('done')"))
    killed = await runner.start(run("killed", "python", "-c", "import time; time.sleep(30)"))
    await asyncio.sleep(0.5)
    await runner.close()  # the scheduler "crashes": the runs go on without it
    os.killpg(int(killed.ref), 9)  # and one dies with its wrapper: nobody can say how it ended
    await asyncio.sleep(1.0)
    fresh = LocalRunner(state_dir=runner.state_dir, runner_id=runner.runner_id)
    try:
        outcomes = {handle.run_id: await asyncio.wait_for(fresh.wait(await fresh.attach(handle.run_id)), 10)
                    for handle in (live, ended, killed)}
        assert (outcomes[live.run_id].exit_code, outcomes[live.run_id].reason) == (3, "failed: exit code 3")
        assert outcomes[ended.run_id].exit_code == 0 and outcomes[ended.run_id].succeeded
        assert outcomes[killed.run_id].exit_code is None and outcomes[killed.run_id].reason.startswith(LOST)
    finally:
        await fresh.close()


def tagged(run_id: str) -> list[int]:
    """Live processes whose environment carries the run's id (what an escaped child still has)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"AVATAR_RUN_ID={run_id}".encode() in env and state not in "ZX":
            found.append(int(name))
    return found


async def test_leftovers_of_runs_that_end_together_are_killed_before_the_run_is_over(runner):
    # each leader exits at once, leaving one child in its group and one that left it (setsid):
    # by the time wait() reports the end (and the allocation would be released) neither may live
    script = "sleep 300 & setsid sleep 300 & sleep 0.2; exit 0"
    handles = [await runner.start(run(f"leaver-{i}", "sh", "-c", script)) for i in range(4)]
    outcomes = await asyncio.gather(*(runner.wait(handle) for handle in handles))
    assert [outcome.succeeded for outcome in outcomes] == [True] * 4
    for i in range(4):
        assert tagged(f"wl-1.leaver-{i}") == []
    assert not any(run_id.startswith("wl-1.leaver") for run_id in await runner.list_live())


async def test_secret_env_vars_are_resolved_at_start_into_the_process_env_only(tmp_path, request):
    resolved = []

    async def resolve(component_run):
        resolved.append(component_run.run_id)
        return {"HF_TOKEN": "hf-secret-value"}

    runner = LocalRunner(state_dir=tmp_path / "runs", runner_id=f"test-{os.getpid()}-{request.node.name}",
                         secrets=resolve)
    try:
        code = ("import hashlib, os; print(hashlib.sha256(os.environ['HF_TOKEN'].encode()).hexdigest())")
        component_run = ComponentRun("wl-1", "c1", "c1", command=("python", "-c", code),
                                     secret_env={"HF_TOKEN": {"ref": 1}})
        handle = await runner.start(component_run)
        assert (await runner.wait(handle)).succeeded and resolved == ["wl-1.c1"]
        assert [line async for line in runner.logs(handle)] == [hashlib.sha256(b"hf-secret-value").hexdigest()]
        for path in (tmp_path / "runs").rglob("*"):  # meta.json, output.log, the exit file: never the value
            assert not path.is_file() or b"hf-secret-value" not in path.read_bytes()
        with pytest.raises(RunnerError, match="cannot resolve"):  # a runner without a resolver refuses
            await LocalRunner(state_dir=tmp_path / "other").start(component_run)
    finally:
        await runner.close()
