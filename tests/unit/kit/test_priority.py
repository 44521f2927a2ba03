"""services.kit.priority: a process (a service, a component) lowered to a nice value, its session's CPU
group too, never raised back."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from services.kit import priority
from services.kit.priority import lower_priority


def nice_of(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])


def autogroup_nice(pid: int) -> int | None:
    try:
        return int(open(f"/proc/{pid}/autogroup").read().rsplit("nice", 1)[1])
    except OSError:
        return None  # a kernel without autogroup scheduling


@pytest.fixture
def child():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    yield process.pid
    process.kill()
    process.wait()


def test_a_session_leader_and_its_cpu_group_are_niced_and_never_raised_back(child):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    lower_priority(child, 5)
    assert nice_of(child) == max(5, base)
    if autogroup_nice(child) is not None:
        assert autogroup_nice(child) == 5
    lower_priority(child, 2)  # asking for less than it has: it keeps 5, and so does its group
    assert nice_of(child) == max(5, base)
    if autogroup_nice(child) is not None:
        assert autogroup_nice(child) == 5


def test_a_group_change_the_kernel_makes_wait_is_tried_again(child, monkeypatch):
    """Linux lets an unprivileged process change an autogroup's nice once per 100 ms machine-wide
    (EAGAIN): a stack starting seven services at once must not leave six of them at nice 0."""
    if autogroup_nice(child) is None:
        pytest.skip("no autogroup scheduling on this kernel")
    refusals = [OSError(errno.EAGAIN, "Resource temporarily unavailable")] * 2
    real_open = open

    def kernel(path, mode="r", *args, **kwargs):
        if path.endswith("/autogroup") and "w" in mode and refusals:
            raise refusals.pop()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(priority, "open", kernel, raising=False)
    monkeypatch.setattr(priority, "AUTOGROUP_RETRY_SECONDS", 0.01)
    lower_priority(child, 6)
    assert refusals == [] and autogroup_nice(child) == 6


def test_a_process_inside_someone_elses_session_keeps_that_sessions_group():
    before = autogroup_nice(os.getpid())
    member = subprocess.Popen(  # not a session leader: its own nice only
        [sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lower_priority(member.pid, 7)
        assert nice_of(member.pid) == max(7, os.getpriority(os.PRIO_PROCESS, 0))
        assert autogroup_nice(os.getpid()) == before  # the test runner's group is untouched
    finally:
        member.kill()
        member.wait()
