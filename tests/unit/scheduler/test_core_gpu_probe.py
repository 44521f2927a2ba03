from services.scheduler.core.runners.base import GpuUsage
from services.scheduler.core.runners.gpu_probe import (MIB, Gpu, GpuProcess, GpuSample, attribute, parse_gpus,
                                                       parse_processes)

UUID0 = "GPU-5c3b8f3e-6d3c-2a4e-8f0b-0c6e1b2a9d41"
UUID1 = "GPU-9a1f7c22-3b4d-4e5f-a6b7-c8d9e0f1a2b3"
UUID2 = "GPU-0d2e4f60-7182-4a3b-9c5d-6e7f8091a2b4"

# nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits
GPUS = f"""0, {UUID0}, NVIDIA A100-SXM4-80GB, 81920, 40321, 87
1, {UUID1}, NVIDIA A100-SXM4-80GB, 81920, 4, 0
2, {UUID2}, NVIDIA A100-SXM4-80GB, 81920, 3, [N/A]
"""
# nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory --format=csv,noheader,nounits
APPS = f"""4242, {UUID0}, 40310
4250, {UUID0}, 2
9999, {UUID1}, 512
"""


def sample(gpus: str = GPUS, apps: str | None = APPS) -> GpuSample:
    parsed = parse_gpus(gpus)
    assert parsed is not None
    return GpuSample(parsed, None if apps is None else parse_processes(apps))


def test_gpus_are_parsed_in_bytes_and_percent():
    assert parse_gpus(GPUS) == (
        Gpu(0, UUID0, "NVIDIA A100-SXM4-80GB", 81920 * MIB, 40321 * MIB, 87),
        Gpu(1, UUID1, "NVIDIA A100-SXM4-80GB", 81920 * MIB, 4 * MIB, 0),
        Gpu(2, UUID2, "NVIDIA A100-SXM4-80GB", 81920 * MIB, 3 * MIB, None))


def test_fields_nvidia_smi_cannot_give_are_unknown_not_zero():
    text = (f"0, {UUID0}, Tesla K80, [Not Supported], [N/A], [Not Supported]\r\n"
            f"1, {UUID1}, NVIDIA A100-SXM4-40GB MIG 3g.20gb, 40960, [Unknown Error], N/A\n")
    assert parse_gpus(text) == (Gpu(0, UUID0, "Tesla K80", None, None, None),
                                Gpu(1, UUID1, "NVIDIA A100-SXM4-40GB MIG 3g.20gb", 40960 * MIB, None, None))


def test_a_name_with_a_comma_keeps_the_other_fields_in_place():
    assert parse_gpus(f"3, {UUID0}, Quadro RTX 8000, rev. B, 49152, 10, 5")[0].name == "Quadro RTX 8000, rev. B"


def test_gpu_output_that_is_not_understood_gives_nothing():
    for garbage in ("", "\n\n", "No devices were found",
                    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                    "Make sure that the latest NVIDIA driver is installed and running.",
                    "index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%]\n" + GPUS,
                    GPUS + f"1, {UUID1}, NVIDIA A100",          # one truncated line spoils the sample
                    f"[N/A], {UUID0}, A100, 81920, 1, 2",       # a GPU without an index
                    "0, [N/A], A100, 81920, 1, 2",              # ... or without a uuid
                    f"0, {UUID0}, A100, 81920 MiB, 1, 2",       # units despite nounits
                    f"0, {UUID0}, A100, 81920, -1, 2",
                    "\x00\xff binary \x1b[31m noise"):
        assert parse_gpus(garbage) is None, garbage


def test_processes_are_parsed_and_none_running_is_empty():
    assert parse_processes(APPS) == (GpuProcess(4242, UUID0, 40310 * MIB), GpuProcess(4250, UUID0, 2 * MIB),
                                     GpuProcess(9999, UUID1, 512 * MIB))
    assert parse_processes("") == ()
    assert parse_processes("No running processes found\n") == ()
    assert parse_processes(f"4242, {UUID0}, [N/A]") == (GpuProcess(4242, UUID0, None),)


def test_process_output_that_is_not_understood_gives_nothing():
    for garbage in ("pid, gpu_uuid, used_gpu_memory [MiB]\n" + APPS, f"abc, {UUID0}, 10", f"4242, {UUID0}",
                    f"4242, {UUID0}, 10, extra", "Failed to initialize NVML: Driver/library version mismatch"):
        assert parse_processes(garbage) is None, garbage


def test_a_run_gets_its_processes_memory_and_its_gpus_utilisation():
    usage = attribute(sample(), pids={4242, 4250, 77}, gpu_indices=[0, 1])
    assert usage == GpuUsage(memory_bytes=40312 * MIB, utilization=43.5, busy=1)


def test_a_gpu_with_a_process_of_the_run_is_in_use_even_when_idle_right_now():
    assert attribute(sample(), pids={9999}, gpu_indices=[1]) == GpuUsage(512 * MIB, 0.0, 1)


def test_a_busy_gpu_counts_even_when_nvidia_smi_cannot_see_the_runs_processes():
    # another pid namespace: the process list does not show the run's processes
    assert attribute(sample(apps=None), pids={1}, gpu_indices=[0]) == GpuUsage(None, 87.0, 1)
    assert attribute(sample(apps=""), pids={1}, gpu_indices=[0, 1]) == GpuUsage(0, 43.5, 1)


def test_what_nvidia_smi_cannot_say_stays_unknown():
    # GPU 2's utilisation is [N/A] and no process list: whether it is in use cannot be known
    assert attribute(sample(apps=None), pids={4242}, gpu_indices=[1, 2]) == GpuUsage(None, None, None)
    # with the process list known, no process of the run is on it
    assert attribute(sample(), pids={4242}, gpu_indices=[2]) == GpuUsage(40310 * MIB, None, 0)
    unknown_memory = sample(apps=f"4242, {UUID0}, [N/A]")
    assert attribute(unknown_memory, pids={4242}, gpu_indices=[0]) == GpuUsage(None, 87.0, 1)


def test_a_run_given_a_gpu_this_machine_does_not_have_cannot_be_measured():
    assert attribute(sample(), pids={4242}, gpu_indices=[0, 7]) is None


def test_a_run_without_gpus_uses_none():
    assert attribute(sample(), pids={123}, gpu_indices=[]) == GpuUsage(0, None, 0)
