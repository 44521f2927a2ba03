"""services.kit.priority: a process (a service, a component) lowered to a nice value, its session's CPU
group too, never raised back. The nice is the kernel's; the autogroup file is a stand-in under tmp_path
(PROC), so these run alike on a kernel with or without autogroup scheduling."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from services.kit import priority
from services.kit.priority import autogroup_nice, lower_priority


def nice_of(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])


def sleeper(*, session: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=session)


@pytest.fixture
def proc(tmp_path, monkeypatch):
    """A /proc whose autogroup files are ours to read: `groups(pid)` gives a process one, at nice 0."""
    monkeypatch.setattr(priority, "PROC", tmp_path)

    def groups(pid: int) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "autogroup").write_text(f"/autogroup-{pid} nice 0\n")

    return groups


@pytest.fixture
def leader():
    process = sleeper(session=True)
    yield process.pid
    process.kill()
    process.wait()


def test_a_session_leader_and_its_cpu_group_are_niced_and_never_raised_back(leader, proc):
    proc(leader)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    lower_priority(leader, 5)
    assert nice_of(leader) == max(5, base) and autogroup_nice(leader) == 5
    lower_priority(leader, 2)  # asking for less than it has: it keeps 5, and so does its group
    assert nice_of(leader) == max(5, base) and autogroup_nice(leader) == 5


def test_a_group_change_the_kernel_makes_wait_is_tried_again(leader, proc, monkeypatch):
    """Linux lets an unprivileged process change an autogroup's nice once per 100 ms machine-wide
    (EAGAIN): a stack starting seven services at once must not leave six of them at nice 0."""
    proc(leader)
    refusals = [OSError(errno.EAGAIN, "Resource temporarily unavailable")] * 2
    real_open = open

    def kernel(path, mode="r", *args, **kwargs):
        if str(path).endswith("/autogroup") and "w" in mode and refusals:
            raise refusals.pop()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(priority, "open", kernel, raising=False)
    monkeypatch.setattr(priority, "AUTOGROUP_RETRY_SECONDS", 0.01)
    lower_priority(leader, 6)
    assert refusals == [] and autogroup_nice(leader) == 6


def test_without_autogroup_scheduling_the_process_nice_is_enough(leader, proc):
    lower_priority(leader, 4)  # no autogroup file for it: nothing to write, nothing raised
    assert nice_of(leader) == max(4, os.getpriority(os.PRIO_PROCESS, 0)) and autogroup_nice(leader) is None


def test_a_process_inside_someone_elses_session_keeps_that_sessions_group(proc):
    member = sleeper(session=False)  # in the test runner's session: its own nice only
    try:
        proc(member.pid)
        lower_priority(member.pid, 7)
        assert nice_of(member.pid) == max(7, os.getpriority(os.PRIO_PROCESS, 0))
        assert autogroup_nice(member.pid) == 0  # the session's group (the runner's) is untouched
    finally:
        member.kill()
        member.wait()
