"""The GPU probe and the local runner's GPU usage, against a fake nvidia-smi on PATH (this machine has no GPU)."""
import os
import time

import psutil
import pytest

from services.scheduler.core.runners.base import ComponentRun, GpuUsage
from services.scheduler.core.runners.gpu_probe import MIB, NvidiaSmi
from services.scheduler.core.runners.local import LocalRunner
from tests.support.fake_nvidia_smi import UUIDS, first_on_path, install
from tests.support.infra import wait_until


@pytest.fixture
def fake(tmp_path, monkeypatch):
    directory = tmp_path / "bin"

    def put(**behaviour):
        path = install(directory, **behaviour)
        first_on_path(monkeypatch, directory)
        return path

    return put


async def test_a_sample_has_every_gpu_and_the_processes_using_them(fake):
    fake(gpus=2)
    sample = await NvidiaSmi().sample()
    assert [(g.index, g.uuid, g.memory_total_bytes, g.memory_used_bytes, g.utilization) for g in sample.gpus] == [
        (0, UUIDS[0], 81920 * MIB, 1000 * MIB, 30), (1, UUIDS[1], 81920 * MIB, 1001 * MIB, 40)]
    assert sample.processes is not None


async def test_without_nvidia_smi_there_is_no_sample(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    probe = NvidiaSmi()
    assert not probe.available() and await probe.sample() is None


async def test_a_failing_nvidia_smi_gives_no_sample(fake):
    fake(exit_code=9)
    assert await NvidiaSmi().sample() is None


async def test_output_that_is_not_understood_gives_no_sample(fake):
    fake(raw="Failed to initialize NVML: Driver/library version mismatch\n")
    assert await NvidiaSmi().sample() is None


async def test_a_hanging_nvidia_smi_is_given_up_and_killed(fake):
    path = fake(sleep_s=30)
    started = time.monotonic()
    assert await NvidiaSmi(timeout_seconds=0.5).sample() is None
    assert time.monotonic() - started < 5
    assert not _running(path)


async def test_flooding_output_is_cut_off(fake):
    path = fake(raw="x" * 1023 + "\n", repeat=4096, sleep_s=30)  # 4 MiB, then it would hang
    started = time.monotonic()
    assert await NvidiaSmi(max_output_bytes=1 << 20).sample() is None
    assert time.monotonic() - started < 5
    assert not _running(path)


async def test_the_local_runner_measures_the_gpus_it_gave_a_run(fake, tmp_path):
    fake(gpus=4, app_memory_mib=300)
    runner = LocalRunner(state_dir=tmp_path / "runs", runner_id=f"gpu-test-{os.getpid()}", gpu_probe=NvidiaSmi())
    handle = await runner.start(ComponentRun("wl-gpu", "c1", "c1", command=("sleep", "30"), gpu_indices=(1, 3)))
    try:
        usage = await _sample_after_exec(runner, handle, gpu=True)
        # 300 MiB on each of its two GPUs; GPUs 1 and 3 are 40% and 60% busy
        assert usage.gpu == GpuUsage(memory_bytes=600 * MIB, utilization=50.0, busy=2)
        assert usage.memory_rss_bytes > 0
    finally:
        await runner.stop(handle, 0.5)
        await runner.close()


async def test_the_local_runner_without_a_probe_or_nvidia_smi_measures_no_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin")
    runner = LocalRunner(state_dir=tmp_path / "runs", runner_id=f"gpu-test-{os.getpid()}-none", gpu_probe=NvidiaSmi())
    handle = await runner.start(ComponentRun("wl-gpu", "c2", "c2", command=("sleep", "30"), gpu_indices=(0,)))
    try:
        usage = await _sample_after_exec(runner, handle)
        assert usage.gpu is None and usage.memory_rss_bytes > 0
    finally:
        await runner.stop(handle, 0.5)
        await runner.close()


async def _sample_after_exec(runner: LocalRunner, handle, *, gpu: bool = False):
    """A usage sample of the command itself. It runs as a child of the run's wrapper sh, which forks it: until
    the child has exec'd (its environment the command's, CUDA_VISIBLE_DEVICES set) nvidia-smi cannot list it,
    and a GPU sample taken before that is reused for up to a second (one per sampling round)."""
    wrapper = psutil.Process(int(handle.ref))

    def execed() -> bool:
        try:
            return any(child.name() == "sleep" for child in wrapper.children())
        except psutil.Error:
            return False

    await wait_until(execed, message="the command started by the wrapper")

    async def sampled():
        usage = await runner.usage(handle)
        if usage is None or usage.memory_rss_bytes == 0:
            return None
        if gpu and (usage.gpu is None or usage.gpu.memory_bytes == 0):  # a GPU sample from before the exec
            return None
        return usage
    return await wait_until(sampled, message="a usage sample of the running command")


def _running(executable) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(executable).encode() in f.read().split(b"\0"):
                    with open(f"/proc/{pid}/stat") as s:
                        if s.read().rsplit(")", 1)[1].split()[0] not in "ZX":
                            return True
        except OSError:
            continue
    return False
