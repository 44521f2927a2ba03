"""LocalRunner: a component run is a subprocess on this machine (the default without a cluster).

- The command runs in its own session / process group (start_new_session=True), at a lower CPU
  priority when `nice` is given (the services sharing this machine stay responsive while many
  components run); stop sends SIGTERM to the group, then SIGKILL after a grace period. Processes that left the group
  (setsid) are still found through their environment tag and killed too.
- Environment: a few inherited variables (PATH, HOME, …; never the scheduler's secrets),
  then the run's env and its secret env vars' values (resolved at start, kept nowhere else), then CUDA_VISIBLE_DEVICES = the allocated GPU indices ("" for none),
  AVATAR_RUN_ID / AVATAR_RUNNER_ID tags and PYTHONUNBUFFERED=1.
- stdout and stderr go to <state_dir>/<run>/output.log (so output survives a scheduler
  restart); a pump task tails that file and hands every line to the log sink.
- list_live() finds (through psutil) the processes whose environment carries this runner id, so a
  restarted scheduler can tell which runs still exist; attach() re-adopts one: it watches the run's
  wrapper by pid and start time (meta.json), and once that ends stops what is left with the run's marker. The command runs under a small sh that records its exit status in the
  run's directory, so an adopted run, or one that ended while no scheduler watched, still reports how it
  ended; only a run that died without a word (its machine or the wrapper killed) is LOST.
- usage() sums RSS and CPU time of the live processes; None when nothing is measurable. Given a
  GPU probe (gpu_probe.NvidiaSmi), it adds the GPU memory of the run's processes (by pid) and the
  utilisation of the GPUs it was given; one probe sample serves a sampling round.
- Every process scan goes through one _ProcessTable, which reads a process's run tags once per
  process (pid + start time), so a scan costs one read per process; usage() of every live run
  shares one scan per sampling round, and runs ending together share one scan.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, AsyncIterator, Callable, NamedTuple, Sequence

import psutil

from services.kit.priority import lower_priority

from .base import (FAILED, LOST, RUN_ID_ENV, STOPPED, SUCCEEDED, ComponentRun, LogSink, RunHandle,
                   RunnerError, RunOutcome, SecretResolver, Usage, deliver, resolve_secrets, safe_name)
from .gpu_probe import GpuProbe, GpuSample, attribute

log = logging.getLogger(__name__)
RUNNER_ID_ENV = "AVATAR_RUNNER_ID"
DEFAULT_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
REPO_ROOT = Path(__file__).resolve().parents[4]
_GPU_SAMPLE_MAX_AGE = 1.0  # seconds: long enough for one sampling round of every live run


Tag = tuple[str, str]  # (runner id, run id) from a process's environment
_UNREAD = object()
# The command runs under a small sh that writes its exit status to <run dir>/exit ($0) when it ends, so a
# scheduler that adopts the run after a restart learns how it ended, or that it ended while nobody watched.
# A component killed by a signal is reported by sh as 128 + the signal; the runner reads that back as the signal
# (_exit_status). The sh does not re-raise it on itself: 128 + SIGSTOP (an exit code a program may choose)
# would stop the sh instead of ending it, and the run would never end.
# The sh itself holds no GPU: the command alone is given CUDA_VISIBLE_DEVICES ($1), so nothing counts the sh as
# a GPU process.
_RECORD_EXIT = 'gpus=$1; shift; CUDA_VISIBLE_DEVICES="$gpus" "$@"; code=$?; printf "%s" "$code" > "$0"; exit "$code"'
# signals whose default action does not end a process: sh's 128 + one of them is a plain exit code
_NOT_FATAL = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN,
                        signal.SIGTTOU, signal.SIGURG, signal.SIGWINCH})
EXIT_FILE = "exit"
# a process this young may not have exec'd its own environment yet (3 s, not 2: psutil's create_time
# adds the boot time in whole seconds, so an age can read up to 1 s high)
_YOUNG_SECONDS = 3.0


class _Proc(NamedTuple):
    process: psutil.Process  # compares by pid and start time, so a reused pid is another process
    pgrp: int
    tag: Tag | None

    @property
    def pid(self) -> int:
        return self.process.pid


def _exit_status(code: int) -> int:
    """The status of the wrapper's command from sh's: 128 + N is death by signal N (negative, as subprocess
    reports it) when N's default action ends a process; anything else is an exit code."""
    return -(code - 128) if 128 < code < 193 and (code - 128) not in _NOT_FATAL else code


def _wrapper(pid: object, created: object) -> psutil.Process | None:
    """The run's wrapper sh, if the process with that pid is still the one started then (a pid is reused,
    a pid and its start time never)."""
    try:
        process = psutil.Process(int(pid))  # type: ignore[call-overload]
        if abs(process.create_time() - float(created)) < 0.01:  # type: ignore[arg-type]
            return process
    except (psutil.Error, TypeError, ValueError):
        pass
    return None


def _alive(process: psutil.Process) -> bool:
    """Not a zombie (nor gone): a zombie holds no resources and cannot be killed."""
    try:
        return process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def _tag(process: psutil.Process) -> Tag | None:
    try:
        env = process.environ()
    except psutil.Error:
        return None
    return (env[RUNNER_ID_ENV], env[RUN_ID_ENV]) if RUNNER_ID_ENV in env and RUN_ID_ENV in env else None


def _young(process: psutil.Process) -> bool:
    try:
        return time.time() - process.create_time() <= _YOUNG_SECONDS
    except psutil.Error:
        return False


class _ProcessTable:
    """Scans of the process table: every process with its process group and the run tags of its environment.

    The tags of a process are read once per process (pid + start time): an environment is fixed when the
    process execs, and reading every environment on every scan would make the scans the runner's largest
    cost. "No tags" is remembered only for processes older than a few seconds, so one caught between fork
    and exec is read again. A scan includes zombies; callers keep the live ones (_alive), which costs a read
    only for the few processes that belong to a run."""

    def __init__(self) -> None:
        self._tags: dict[psutil.Process, Tag | None] = {}
        self._last: tuple[float, list[_Proc]] | None = None
        self._pending: asyncio.Future | None = None

    def scan(self, *, max_age: float = 0.0) -> list[_Proc]:
        """Every process and its tags; a scan begun less than max_age seconds ago is reused."""
        if max_age > 0 and self._last is not None and time.monotonic() - self._last[0] <= max_age:
            return self._last[1]
        begun = time.monotonic()
        own = os.getpid()
        tags: dict[psutil.Process, Tag | None] = {}
        found = []
        for pid in psutil.pids():
            try:
                process = psutil.Process(pid)
                pgrp = os.getpgid(pid)
            except (psutil.Error, OSError):  # gone meanwhile
                continue
            tag = self._tags.get(process, _UNREAD)
            if tag is _UNREAD:
                tag = _tag(process) if pid != own else None
                remember = tag is not None or not _young(process)
            else:
                remember = True
            if remember:
                tags[process] = tag  # type: ignore[assignment]
            found.append(_Proc(process, pgrp, tag))  # type: ignore[arg-type]
        self._tags = tags  # processes that are gone are forgotten
        self._last = (begun, found)
        return found

    async def scan_since(self, since: float, window: float) -> list[_Proc]:
        """A scan begun at or after `since`. Callers within `window` seconds of each other share one: a
        burst of runs ending costs one pass over the process table, not one per run."""
        if self._last is not None and self._last[0] >= since:
            return self._last[1]
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._scan_later(window))
            # retrieved here even if every waiter was cancelled: a failed scan is logged, not lost
            self._pending.add_done_callback(_log_scan_failure)
        return await asyncio.shield(self._pending)

    async def _scan_later(self, window: float) -> list[_Proc]:
        await asyncio.sleep(window)
        return self.scan()


def _log_scan_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a shared process scan failed: %s", future.exception())


class _Child:
    """A component process started with subprocess.Popen, its exit awaited through a pidfd.

    asyncio's own subprocesses cost several times the CPU per start: a child watcher thread per process (and
    under uvloop, libuv forks the whole scheduler instead of vfork). Popen uses vfork; the pidfd becomes
    readable when the process exits, on any event loop, with no SIGCHLD handling."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self._popen = popen
        self.pid = popen.pid

    @classmethod
    async def start(cls, command: Sequence[str], *, log_file: IO[bytes], cwd: str, env: dict[str, str],
                    nice: int = 0) -> "_Child":
        def spawn() -> subprocess.Popen:
            popen = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log_file,
                                     stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True,
                                     close_fds=True)
            if nice:
                lower_priority(popen.pid, nice)
            return popen

        # in a thread: Popen returns once the child has exec'd, which under load takes a while, and the
        # kernel may make an unprivileged lowering of the child's CPU group wait its turn
        return cls(await asyncio.to_thread(spawn))

    async def wait(self) -> int:
        """The exit status (negative: killed by that signal), once the process has exited."""
        if self._popen.returncode is not None:
            return self._popen.returncode
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self.pid)  # the process is ours and not yet reaped: it exists, maybe a zombie
        except (AttributeError, OSError):  # no pidfds (Linux < 5.3): look every 50 ms instead
            while self._popen.poll() is None:
                await asyncio.sleep(0.05)
            return self._popen.returncode
        try:
            exited = loop.create_future()
            loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
            try:
                await exited
            finally:
                loop.remove_reader(pidfd)
        finally:
            os.close(pidfd)
        return self._popen.wait()  # reaps it: returns at once


@dataclass
class _Run:
    run_id: str
    pgid: int
    directory: Path
    proc: _Child | None = None  # None when adopted after a restart
    # adopted: its wrapper sh, named by pid and start time (None once it ended); watched=False: not known
    wrapper: psutil.Process | None = None
    wrapper_known: bool = False
    gpu_indices: tuple[int, ...] = ()
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: RunOutcome | None = None
    stopped: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)
    last_sample: tuple[float, float] | None = None  # (time, cpu seconds)

    @property
    def log_path(self) -> Path:
        return self.directory / "output.log"

    def recorded_exit(self) -> int | None:
        """The exit status the wrapper wrote (negative: killed by that signal); None if it wrote none."""
        try:
            code = int((self.directory / EXIT_FILE).read_text())
        except (OSError, ValueError):
            return None
        return _exit_status(code)


class LocalRunner:
    def __init__(self, *, state_dir: str | Path, cwd: str | Path | None = None, log_sink: LogSink | None = None,
                 runner_id: str = "local", stop_grace_seconds: float = 10.0, poll_interval: float = 0.05,
                 inherit_env: Sequence[str] = DEFAULT_INHERITED_ENV, nice: int = 0,
                 gpu_probe: GpuProbe | None = None, secrets: SecretResolver | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.secrets = secrets
        self.cwd = Path(cwd) if cwd is not None else REPO_ROOT
        self.log_sink = log_sink
        self.runner_id = runner_id
        self.stop_grace_seconds = stop_grace_seconds
        self.poll_interval = poll_interval
        self.inherit_env = tuple(inherit_env)
        self.nice = nice  # components' CPU priority (0-19): the services on this machine come first
        self._runs: dict[str, _Run] = {}
        self._table = _ProcessTable()
        self.gpu_probe = gpu_probe
        self._gpu_sample: tuple[float, GpuSample | None] | None = None
        self._gpu_lock = asyncio.Lock()

    # ------------------------------------------------------------------ helpers
    def _directory(self, run_id: str) -> Path:
        digest = hashlib.sha1(run_id.encode()).hexdigest()[:10]
        return self.state_dir / f"{safe_name(run_id, 40)}-{digest}"

    def _environment(self, run: ComponentRun, secret_values: dict[str, str]) -> dict[str, str]:
        env = {k: os.environ[k] for k in self.inherit_env if k in os.environ}
        env.update({str(k): str(v) for k, v in run.env.items()})
        env.update(secret_values)
        env.update({
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in run.gpu_indices),
            # CUDA's default order (fastest first) may differ from nvidia-smi's: in PCI bus order
            # an index names the same GPU to the run and to the GPU probe
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            RUN_ID_ENV: run.run_id,
            RUNNER_ID_ENV: self.runner_id,
            "AVATAR_WORKLOAD_ID": run.workload_id,
            "AVATAR_COMPONENT_ID": run.component_id,
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def _members(self, run: _Run) -> list[_Proc]:
        """Live (non-zombie) processes of the run: its process group plus tagged escapees."""
        return self._of_run(run, self._table.scan())

    def _of_run(self, run: _Run, scan: list[_Proc]) -> list[_Proc]:
        return [p for p in self._matching(run, scan) if _alive(p.process)]

    def _matching(self, run: _Run, scan: list[_Proc]) -> list[_Proc]:
        mine = (self.runner_id, run.run_id)
        if run.proc is None:  # adopted: its group id may be another's by now, its run marker is its own
            return [p for p in scan if p.tag == mine]
        return [p for p in scan if p.pgrp == run.pgid or p.tag == mine]

    def _signal(self, run: _Run, sig: int) -> None:
        if run.proc is not None:  # an adopted run's group is signalled member by member (its marker)
            try:
                os.killpg(run.pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for member in self._members(run):
            try:
                member.process.send_signal(sig)  # checks the start time first: never a reused pid
            except psutil.Error:
                pass

    async def _gone(self, run: _Run, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if not self._members(run):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self.poll_interval)

    async def _terminate(self, run: _Run, grace: float, *, since: float | None = None) -> None:
        if since is not None:
            # the usual end: the command exited and left nothing behind. Runs ending within 50 ms of
            # each other share one process scan: any scan begun after a leader's exit saw what it left
            try:
                shared = await self._table.scan_since(since, window=0.05)
            except Exception:  # the shared scan failed: scan for this run alone
                shared = self._table.scan()
            if not self._of_run(run, shared):
                return
        elif not self._members(run):
            return
        self._signal(run, signal.SIGTERM)
        if not await self._gone(run, grace):
            self._signal(run, signal.SIGKILL)
            await self._gone(run, 10.0)

    # ------------------------------------------------------------------ Runner API
    async def start(self, run: ComponentRun) -> RunHandle:
        known = self._runs.get(run.run_id)
        if known is not None and not known.finished.is_set():
            return RunHandle(run.run_id, str(known.pgid))
        command = list(run.command)
        if not command:
            raise RunnerError(f"run {run.run_id}: no command to run")
        if command[0] in ("python", "python3"):
            command[0] = sys.executable
        # the wrapper always starts: find what it is to run first, so a bad command fails the start
        found = shutil.which(command[0], path=os.environ.get("PATH")) if "/" not in command[0] else (
            command[0] if os.access(command[0], os.X_OK) and not os.path.isdir(command[0]) else None)
        if found is None:
            raise RunnerError(f"run {run.run_id}: cannot start {command[0]!r}: not found or not executable")
        secret_values = await resolve_secrets(self.secrets, run)  # into the process env only, nowhere on disk
        directory = self._directory(run.run_id)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / EXIT_FILE).unlink(missing_ok=True)
        log_file = open(directory / "output.log", "ab")
        try:
            env = self._environment(run, secret_values)
            gpus = env.pop("CUDA_VISIBLE_DEVICES")
            proc = await _Child.start(["/bin/sh", "-c", _RECORD_EXIT, str(directory / EXIT_FILE), gpus, *command],
                                      log_file=log_file, cwd=str(self.cwd), env=env, nice=self.nice)
        except OSError as exc:
            raise RunnerError(f"run {run.run_id}: cannot start {command[0]!r}: {exc}") from exc
        finally:
            log_file.close()
        try:  # with the pid, names the process exactly (a pid is reused, a pid and its start time never)
            created = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            created = None
        (directory / "meta.json").write_text(json.dumps({
            "run_id": run.run_id, "pid": proc.pid, "pgid": proc.pid, "created": created,
            "runner_id": self.runner_id, "started_at": time.time(), "command": command, "node": run.node_name,
            "gpu_indices": list(run.gpu_indices)}))
        state = _Run(run.run_id, proc.pid, directory, proc, gpu_indices=run.gpu_indices)
        self._runs[run.run_id] = state
        state.tasks.append(asyncio.create_task(self._reap(state)))
        if self.log_sink is not None:
            state.tasks.append(asyncio.create_task(self._pump(state)))
        return RunHandle(run.run_id, str(proc.pid))

    async def _reap(self, run: _Run) -> None:
        try:
            if run.proc is not None:
                code = await run.proc.wait()
                code = _exit_status(code) if code > 0 else code  # negative: the sh itself was killed
                exited = time.monotonic()
                # the leader is done: nothing of the run may outlive it (GPUs go back to the pool)
                await self._terminate(run, grace=min(2.0, self.stop_grace_seconds), since=exited)
                run.outcome = self._outcome(run, code)
            elif run.wrapper_known:
                # adopted: watched through its wrapper alone (a status read, no process scan); when the wrapper
                # is done its exit status is written, and nothing of the run may outlive it
                while run.wrapper is not None and run.wrapper.is_running() and _alive(run.wrapper):
                    await asyncio.sleep(max(self.poll_interval, 0.2))
                await self._terminate(run, grace=min(2.0, self.stop_grace_seconds), since=time.monotonic())
                run.outcome = self._adopted_outcome(run)
            else:  # adopted, its wrapper unknown (a run directory without its start time): by its marker
                while self._members(run):
                    await asyncio.sleep(max(self.poll_interval, 0.2))
                run.outcome = self._adopted_outcome(run)
        except Exception as exc:  # processes unreadable or the like: the run still ends, wait() never hangs
            log.exception("reaping run %s failed", run.run_id)
            run.outcome = run.outcome or RunOutcome(None, f"{LOST}: the runner could not reap it: {exc}"[:300])
        run.finished.set()

    def _adopted_outcome(self, run: _Run) -> RunOutcome:
        """How an adopted run ended: the exit status its wrapper wrote, else it died without a word (LOST)."""
        code = run.recorded_exit()
        if run.stopped:
            return RunOutcome(code, STOPPED)
        if code is not None:  # it ended (maybe while nobody watched) and said how
            return self._outcome(run, code)
        return RunOutcome(None, f"{LOST}: it died without an exit status (adopted after a runner restart)")

    @staticmethod
    def _outcome(run: _Run, code: int) -> RunOutcome:
        if run.stopped:
            return RunOutcome(code, STOPPED)
        if code == 0:
            return RunOutcome(0, SUCCEEDED)
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return RunOutcome(code, f"{FAILED}: killed by {name}")
        return RunOutcome(code, f"{FAILED}: exit code {code}")

    async def _pump(self, run: _Run) -> None:
        """Hand every output line to the sink; remember how far (for a restarted runner)."""
        offset_file = run.directory / "delivered"
        try:
            delivered = int(offset_file.read_text())
        except (OSError, ValueError):
            delivered = 0
        saved_at = time.monotonic()
        try:
            async for line, position in self._tail(run.log_path, run.finished.is_set, delivered):
                await deliver(self.log_sink, run.run_id, line)
                delivered = position
                if time.monotonic() - saved_at > 0.5:
                    offset_file.write_text(str(delivered))
                    saved_at = time.monotonic()
        finally:
            offset_file.write_text(str(delivered))

    async def _tail(self, path: Path, done: Callable[[], bool], offset: int = 0) -> AsyncIterator[tuple[str, int]]:
        buffer = b""
        with open(path, "rb") as f:
            f.seek(offset)
            position = offset
            while True:
                chunk = f.read(65536)
                if chunk:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        position += len(raw) + 1
                        yield raw.decode(errors="replace").rstrip("\r"), position
                    continue
                if done():
                    rest = f.read()
                    if rest:
                        buffer += rest
                        continue
                    if buffer:
                        yield buffer.decode(errors="replace").rstrip("\r"), position + len(buffer)
                    return
                await asyncio.sleep(self.poll_interval)

    async def wait(self, handle: RunHandle) -> RunOutcome:
        run = self._runs.get(handle.run_id)
        if run is None:
            await self.attach(handle.run_id)
            run = self._runs.get(handle.run_id)
            if run is None:
                return RunOutcome(None, f"{LOST}: unknown run")
        await run.finished.wait()
        await asyncio.gather(*run.tasks, return_exceptions=True)
        assert run.outcome is not None
        return run.outcome

    async def stop(self, handle: RunHandle, grace_seconds: float | None = None) -> None:
        run = self._runs.get(handle.run_id)
        if run is None:
            await self.attach(handle.run_id)
            run = self._runs.get(handle.run_id)
            if run is None:
                return
        if run.finished.is_set():
            return
        run.stopped = True
        await self._terminate(run, self.stop_grace_seconds if grace_seconds is None else grace_seconds)
        await run.finished.wait()

    async def logs(self, handle: RunHandle, *, follow: bool = True) -> AsyncIterator[str]:
        run = self._runs.get(handle.run_id)
        path = run.log_path if run else self._directory(handle.run_id) / "output.log"
        if not path.exists():
            return
        done = (lambda: True) if not follow or run is None else run.finished.is_set
        async for line, _ in self._tail(path, done):
            yield line

    async def list_live(self) -> set[str]:
        return {p.tag[1] for p in self._table.scan()
                if p.tag is not None and p.tag[0] == self.runner_id and _alive(p.process)}

    async def attach(self, run_id: str) -> RunHandle | None:
        run = self._runs.get(run_id)
        if run is not None:
            return RunHandle(run_id, str(run.pgid))
        directory = self._directory(run_id)
        try:
            meta = json.loads((directory / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        known = meta.get("created") is not None  # meta.json names the wrapper by pid and start time
        run = _Run(run_id, int(meta["pgid"]), directory, gpu_indices=tuple(meta.get("gpu_indices") or ()),
                   wrapper=_wrapper(meta.get("pid"), meta.get("created")) if known else None, wrapper_known=known)
        self._runs[run_id] = run
        run.tasks.append(asyncio.create_task(self._reap(run)))
        if self.log_sink is not None and run.log_path.exists():
            run.tasks.append(asyncio.create_task(self._pump(run)))
        return RunHandle(run_id, str(run.pgid))

    async def usage(self, handle: RunHandle) -> Usage | None:
        run = self._runs.get(handle.run_id)
        if run is None:
            return None
        scan = self._table.scan(max_age=0.05)  # one scan serves a whole sampling round of runs
        pids, cpu, rss = set(), 0.0, 0
        for member in self._matching(run, scan):
            process = member.process
            try:
                with process.oneshot():  # status and CPU times share one read
                    if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                        continue
                    times = process.cpu_times()
                    memory = process.memory_info()
            except psutil.Error:  # gone meanwhile
                continue
            pids.add(member.pid)
            cpu += times.user + times.system
            rss += memory.rss
        if not pids:
            return None
        now = time.monotonic()
        cores = None
        if run.last_sample is not None and now > run.last_sample[0] and cpu >= run.last_sample[1]:
            cores = (cpu - run.last_sample[1]) / (now - run.last_sample[0])
        run.last_sample = (now, cpu)
        gpus = await self._gpus()
        return Usage(memory_rss_bytes=rss, cpu_seconds=cpu, cpu_cores=cores, processes=len(pids),
                     sampled_at=time.time(),
                     gpu=None if gpus is None else attribute(gpus, pids, run.gpu_indices))

    async def _gpus(self) -> GpuSample | None:
        if self.gpu_probe is None:
            return None
        async with self._gpu_lock:  # runs sampled together share one nvidia-smi call
            if self._gpu_sample is None or time.monotonic() - self._gpu_sample[0] > _GPU_SAMPLE_MAX_AGE:
                sample = await self.gpu_probe.sample()
                self._gpu_sample = (time.monotonic(), sample)
            return self._gpu_sample[1]

    async def close(self) -> None:
        """Stop watching (runs keep going; a new runner can attach to them)."""
        for run in self._runs.values():
            for task in run.tasks:
                task.cancel()
        await asyncio.gather(*(t for r in self._runs.values() for t in r.tasks), return_exceptions=True)
        self._runs.clear()
