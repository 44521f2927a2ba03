"""Watching a run: its log, its end, its metrics and log upload, the release of its allocation."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import urllib3.exceptions
from minio.error import ServerError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from services.kit.instrument import untraced
from services.kit.telemetry import WORKLOAD_ATTRIBUTE, correlation_id, extract_context
from services.scheduler import domain, store
from services.scheduler import metrics as m
from services.scheduler.aio import cancel_all, until_done, within
from services.scheduler.core.runners.base import LOST, STOPPED, RunHandle, Runner
from services.scheduler.engine.context import DEPENDENCY_AWAY, ActiveRun, Adapters, LiveRuns, Wake, record_run_end
from services.scheduler.leader import FENCED
from services.scheduler.logs import RunLog, collect, read_json
from services.scheduler.records import JobRecord, RunRecord

log = logging.getLogger(__name__)
# S3 away for a moment (a restart, a reset connection, a 5xx): a run's metrics and log are tried again
S3_AWAY: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, ServerError, ConnectionError, TimeoutError)


class Watcher:
    def __init__(self, io: Adapters, live: LiveRuns, wake: Wake, *, spool_dir: Path, reattach: bool) -> None:
        self.io = io
        self.live = live
        self.wake = wake
        self.spool_dir = spool_dir
        self.reattach = reattach
        self.tracer = trace.get_tracer("avatar.scheduler")

    def track(self, job: JobRecord, run: RunRecord, handle: RunHandle) -> None:
        active = ActiveRun(run.run_id, job.job_id, run.allocation_id, handle)
        self.live.active[run.run_id] = active
        self.live.allocations.add(run.allocation_id)
        active.task = asyncio.create_task(self._watch(job, run, active), name=f"watch-{run.run_id}")

    async def _watch(self, job: JobRecord, run: RunRecord, active: ActiveRun) -> None:
        io, settings = self.io, self.io.settings
        span = self.tracer.start_span(
            f"run component {run.name}", context=extract_context(job.trace_headers),
            attributes={WORKLOAD_ATTRIBUTE: job.workload_id, "avatar.job_id": job.job_id,
                        "avatar.task_id": run.task_id, "avatar.component_id": run.component_id,
                        "avatar.component_name": run.name, "avatar.node": run.node or "",
                        "avatar.gpu_indices": ",".join(str(i) for i in run.gpu_indices or []),
                        "avatar.runner_ref": active.handle.ref})
        # the run's own Redis/S3/PostgreSQL calls are its children (its own task: attached for its life)
        attached = otel_context.attach(trace.set_span_in_context(span))
        bound = correlation_id.set(job.workload_id)
        runlog = RunLog(self.spool_dir, run.run_id, io.redis, settings.sched_prefix,
                        max_bytes=settings.scheduler_log_max_bytes, live_lines=settings.scheduler_live_log_lines)
        started = time.monotonic()
        try:
            await runlog.reset_live()
            with untraced():  # mirroring log lines to Redis every 0.2s would be a span each
                collector = asyncio.create_task(collect(io.runner.logs(active.handle, follow=True), runlog))
            try:
                outcome = await io.runner.wait(active.handle)
                done, _ = await asyncio.wait({collector}, timeout=10)
                if not done:
                    await cancel_all([collector])
            except BaseException:
                collector.cancel()
                raise
            if runlog.lines == 0:
                # a run can end before its log stream opened (a pod still Pending when it was
                # asked): read what the runner kept, once, before it is cleaned up
                try:
                    with untraced():
                        await within(collect(io.runner.logs(active.handle, follow=False), runlog), 10)
                except Exception as exc:
                    log.debug("no log for run %s: %s", run.run_id, exc)
            await runlog.finish()
            exit_code = outcome.exit_code
            stopped = run.run_id in self.live.stop_requested or outcome.reason.startswith(STOPPED)
            if outcome.reason.startswith(LOST) and not stopped:  # it died without saying how: not its failure
                await self.rerun(job, run, active.allocation_id, f"rerun: {outcome.reason}", why="lost")
                span.set_attribute("avatar.run_status", "lost")
                return
            status = "succeeded" if outcome.succeeded else ("stopped" if stopped else "failed")
            metrics = await self._read_metrics(run) if status == "succeeded" else None
            log_url = await self._upload_log(job, run, runlog)
            reason = None
            if status == "failed":
                reason = domain.component_failure_reason(run.name, run.component_id, exit_code,
                                                         runlog.last_line, outcome.reason)
            elif status == "stopped":
                reason = "stopped"
            # the end is recorded before the GPUs go back: until PostgreSQL has it, the run holds them (a
            # rebuild of Redis restores the allocation of every run PostgreSQL calls live), so a GPU is never
            # handed out while the record still says it is in use. Both are idempotent and retried until
            # done: a dependency away for a while delays the end, never loses it.
            try:
                await until_done(lambda: record_run_end(io, job, run, status, exit_code=exit_code,
                                                        last_line=runlog.last_line, reason=reason,
                                                        log_url=log_url, metrics=metrics),
                                 what=f"recording the end of run {run.run_id}", retried=DEPENDENCY_AWAY)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) == FENCED:
                    raise  # another leader's now: it adopts the run
                # PostgreSQL refuses this end (e.g. metrics it cannot store): a plain failure is recorded
                # instead, or the run would stay live, its GPUs held, and be adopted again and again
                log.error("PostgreSQL refused the end of run %s (%s: %s): recorded as failed", run.run_id,
                          type(exc).__name__, exc)
                reason = (f"its end ({status}, exit code {exit_code}) could not be recorded: PostgreSQL refused it"
                          f" ({type(exc).__name__})")
                status = "failed"
                await until_done(lambda: record_run_end(io, job, run, status, exit_code=exit_code, reason=reason,
                                                        log_url=log_url),
                                 what=f"recording the end of run {run.run_id}", retried=DEPENDENCY_AWAY)
            await self.release(active.allocation_id, "run_end")
            if self.reattach:  # a finished pod is kept only until its log and outcome are recorded
                try:
                    await io.runner.stop(active.handle, 0)
                except Exception as exc:
                    log.debug("cannot delete the finished pod of %s: %s", run.run_id, exc)
            m.RUNS.labels(status).inc()
            m.RUN_SECONDS.observe(time.monotonic() - started)
            span.set_attribute("avatar.exit_code", -1 if exit_code is None else exit_code)
            span.set_attribute("avatar.run_status", status)
            if status == "failed":
                span.set_status(Status(StatusCode.ERROR, reason or "failed"))
            log.info("run %s %s (exit %s)", run.run_id, status, exit_code)
        except asyncio.CancelledError:
            span.set_attribute("avatar.run_status", "scheduler stopped watching")
            raise
        except Exception as exc:
            log.exception("watching run %s failed", run.run_id)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, "watch failed"))
        finally:
            correlation_id.reset(bound)
            otel_context.detach(attached)
            span.end()
            runlog.discard()
            if self.live.active.get(run.run_id) is active:
                self.live.active.pop(run.run_id, None)
                self.live.stop_requested.discard(run.run_id)
            self.wake()

    async def rerun(self, job: JobRecord, run: RunRecord, attempt: str | None, reason: str, *, why: str) -> None:
        """A run that really died (its process or pod gone, no exit status) goes back to pending with
        `reason` on it, then its GPUs go back (the record first); the engine starts it again. One that
        was run again `scheduler_max_reruns` times already fails instead, with the reasons of its deaths."""
        async def reset() -> bool:
            async with self.io.pool.acquire() as conn:
                return await store.reset_run(conn, run.run_id, reason, attempt=attempt)

        reruns = max(run.attempt - 1, 0)
        if reruns >= self.io.settings.scheduler_max_reruns:
            reasons = "; ".join(r for r in (run.rerun_reason, reason) if r)
            ended = f"rerun {reruns} times: {reasons}"
            if await until_done(lambda: record_run_end(self.io, job, run, "failed", reason=ended),
                                what=f"recording the end of run {run.run_id}", retried=DEPENDENCY_AWAY):
                log.warning("run %s died again (%s): it fails, %s", run.run_id, reason, ended)
        elif await until_done(reset, what=f"resetting run {run.run_id}", retried=DEPENDENCY_AWAY):
            m.RERUNS.labels(why).inc()
            log.warning("run %s died (%s): it runs again", run.run_id, reason)
        if attempt:
            await self.release(attempt, "rerun")
        self.wake()

    async def release(self, allocation_id: str, by: str) -> None:
        """Give an allocation back, retrying while Redis is away (release answers true once)."""
        if await until_done(lambda: self.io.allocator.release(allocation_id),
                            what=f"releasing allocation {allocation_id}", retried=DEPENDENCY_AWAY, cap=10.0):
            m.RELEASED.labels(by).inc()
        self.live.allocations.discard(allocation_id)

    async def _read_metrics(self, run: RunRecord) -> dict | None:
        bucket, _, prefix = run.output_prefix.removeprefix("s3://").partition("/")
        try:
            return await until_done(lambda: read_json(self.io.objects, bucket, f"{prefix}metrics.json"),
                                    what=f"reading the metrics of run {run.run_id}", retried=S3_AWAY,
                                    give_up_after=self.io.settings.scheduler_s3_retry_seconds)
        except Exception as exc:
            log.warning("cannot read metrics.json of run %s: %s", run.run_id, exc)
            return None

    async def _upload_log(self, job: JobRecord, run: RunRecord, runlog: RunLog) -> str | None:
        key = domain.log_key(job.workload_id, run.task_id, run.component_id, test_run_id=job.test_run_id,
                             round_=run.round if job.kind == "looptest" else None)
        try:
            return await until_done(lambda: runlog.upload(self.io.objects, self.io.settings.logs_bucket, key),
                                    what=f"uploading the log of run {run.run_id}", retried=S3_AWAY,
                                    give_up_after=self.io.settings.scheduler_s3_retry_seconds)
        except Exception as exc:
            log.warning("cannot upload the log of run %s: %s", run.run_id, exc)
            return None


async def stop_attempt(runner: Runner, attempt: str | None, grace: float) -> None:
    """Stop a runner run known only by its attempt id (best effort)."""
    if not attempt:
        return
    try:
        handle = await runner.attach(attempt)
        if handle is not None:
            await runner.stop(handle, grace)
    except Exception as exc:
        log.warning("cannot stop run attempt %s: %s", attempt, exc)
