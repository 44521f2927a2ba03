"""CPU priority of a process on a machine it shares: the platform's services, its background work and,
locally, the components it runs."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)
# Linux lets an unprivileged process change an autogroup's nice once per 100 ms, machine-wide (EAGAIN
# otherwise): a stack starting its services, or a round starting components, asks several times at once
AUTOGROUP_ATTEMPTS = 8
AUTOGROUP_RETRY_SECONDS = 0.11
PROC = Path("/proc")


def lower_priority(pid: int, nice: int) -> None:
    """Run process `pid` at `nice` (0-19; never raised back: an unprivileged process may only lower its
    priority); what it starts from now on inherits it. With Linux's autogroup scheduling
    (sched_autogroup_enabled) CPU is first shared between sessions, whatever a process's own nice value,
    so the session's group is niced too when `pid` leads a session of its own (each service and each
    component does): the only nice that counts against the other sessions. May sleep (up to ~1 s) while
    another process changes its group's nice: call it from a thread or before serving."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
    with contextlib.suppress(OSError):
        if os.getsid(pid) != pid:
            return
    path = PROC / str(pid) / "autogroup"
    current = autogroup_nice(pid)
    for attempt in range(AUTOGROUP_ATTEMPTS):
        if current is None or current >= nice:
            return
        try:
            with open(path, "w") as f:
                f.write(str(nice))
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                return  # no autogroups here, or the process is gone
            if attempt + 1 == AUTOGROUP_ATTEMPTS:
                log.warning("the CPU group of process %s stays at nice %s: the kernel refused %s: %s",
                            pid, current, nice, exc)
                return
            time.sleep(AUTOGROUP_RETRY_SECONDS)
            current = autogroup_nice(pid)


def autogroup_nice(pid: int) -> int | None:
    """The nice of the autogroup (session CPU group) of `pid`, or None without autogroup scheduling."""
    try:
        with open(PROC / str(pid) / "autogroup") as f:
            return int(f.read().split()[-1])  # "/autogroup-85 nice 0"
    except (OSError, ValueError, IndexError):
        return None
