"""CPU priority of a process on a machine it shares: the platform's services, its background work and,
locally, the components it runs."""
from __future__ import annotations

import contextlib
import os


def lower_priority(pid: int, nice: int) -> None:
    """Run process `pid` at `nice` (0-19; never raised back: an unprivileged process may only lower its
    priority); what it starts from now on inherits it. With Linux's autogroup scheduling
    (sched_autogroup_enabled) CPU is first shared between sessions, whatever a process's own nice value,
    so the session's group is niced too when `pid` leads a session of its own (each service and each
    component does): the only nice that counts against the other sessions."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
    with contextlib.suppress(OSError):
        if os.getsid(pid) == pid:
            with open(f"/proc/{pid}/autogroup", "w") as f:
                f.write(str(nice))
