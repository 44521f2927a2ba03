"""The store worker: copies pending models from staging into the models bucket, verifies and records them.

Runs for the life of the process. Pending models are claimed with a lease (so replicas share the work
and a crashed replica's models are taken over when its lease expires), copied file by file (a resumed
copy skips files already verified), then marked stored and announced with `model.stored` in one
unit of work (the MarkModelStored command). An object store outage means: count the retry, announce
`model.store_failed` once for the outage (RecordStoreFailure), back off exponentially, and finish on a
later attempt. Staged files are deleted only after the model is recorded as stored.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import threading
import time
import uuid
from concurrent.futures import Executor
from typing import Awaitable, Callable

import asyncpg
from opentelemetry.trace import Status, StatusCode

from services.kit.listening import Listening
from services.kit.messagebus import MessageBus
from services.kit.objectstore import split_s3_url
from services.kit.telemetry import workload_span
from services.kit.wakeups import Wakeups
from services.models import commands, metrics, store
from services.models.settings import ModelsSettings
from services.models.domain import Model, model_path, object_key, retry_delay
from services.models.objects import ObjectStore

log = logging.getLogger(__name__)


class StoreWorker:
    def __init__(self, pool: asyncpg.Pool, wakeups: Wakeups, objects: ObjectStore, settings: ModelsSettings, *,
                 bus: MessageBus, executor: Executor | None = None) -> None:
        self.pool = pool
        self.bus = bus  # a model's outcome (stored, or a failed attempt) is a command: handlers.py
        self.executor = executor  # copies hold a thread for a whole file; keep them off the default pool
        self.objects = objects
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        # LISTENs for pending models: other replicas' by NOTIFY, this process's directly
        self._listening = Listening.on_pool(pool, store.NOTIFY_CHANNEL, wakeups, on_wake=self._takes_work)
        self._stop = threading.Event()  # tells copy threads to abandon their upload at shutdown
        self._active: dict[str, asyncio.Task] = {}
        # test seam: awaited after each file is verified and recorded (model_id, path)
        self.after_file: Callable[[str, str], Awaitable[None]] | None = None

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        try:
            while True:
                self._listening.clear()  # before looking: a notification arriving meanwhile is not lost
                try:
                    await self._listening.hold()
                    pending, due = await self._claim_and_start()
                    metrics.PENDING.set(pending)
                    timeout = self.settings.models_poll_seconds if due is None else min(
                        self.settings.models_poll_seconds, max(0.05, due))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database is away: keep the models, look again shortly
                    log.warning("store worker could not poll pending models: %s", exc)
                    await self._listening.drop()
                    timeout = self.settings.models_poll_seconds
                await self._listening.wait(timeout)
        finally:
            self._stop.set()
            for task in self._active.values():
                task.cancel()
            await asyncio.gather(*self._active.values(), return_exceptions=True)
            await self._listening.drop()

    def _takes_work(self) -> bool:
        """A model of this process is pending: this worker takes it if a slot is free, else (False)
        another replica's worker is woken too."""
        return len(self._active) < self.settings.models_store_concurrency

    async def _claim_and_start(self) -> tuple[int, float | None]:
        """Start storing what is due, as many as there are free slots; (models pending, seconds until
        the next of the others is due)."""
        free = max(0, self.settings.models_store_concurrency - len(self._active))
        claimed = await store.claim_due(self.pool, self.owner, self.settings.models_lease_seconds, free)
        for model in claimed.models:
            task = asyncio.create_task(self._store_model(model), name=f"store-{model.model_id}")
            self._active[model.model_id] = task
            task.add_done_callback(lambda _t, model_id=model.model_id: self._finished(model_id))
        return claimed.pending, claimed.due

    def _finished(self, model_id: str) -> None:
        self._active.pop(model_id, None)
        self._listening.wake()  # a slot is free

    # ------------------------------------------------------------ one model

    async def _store_model(self, model: Model) -> None:
        model_id = model.model_id
        renewer = asyncio.create_task(self._renew(model_id), name=f"lease-{model_id}")
        started = time.perf_counter()
        try:
            # the store continues the request's trace from the workload.completed consumer span (the
            # claim read it; None: a trace of its own)
            with workload_span("model store", model.workload_id, parent=model.trace_headers, attributes={
                    "avatar.model_id": model_id, "avatar.attempt": model.attempts + 1}) as span:
                try:
                    await self._copy_all(model)
                    stored = await self._finish(model)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
                    await self._failed(model, exc)
                    return
            if stored:
                metrics.STORE_SECONDS.observe(time.perf_counter() - started)
                await self._delete_staged(model)
        except asyncio.CancelledError:
            # shutting down: hand the model back at once so a restarted process resumes it without waiting
            with contextlib.suppress(Exception):
                await asyncio.shield(store.release_lease(self.pool, model_id, self.owner))
            raise
        finally:
            renewer.cancel()

    async def _renew(self, model_id: str) -> None:
        every = self.settings.models_lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                if not await store.renew_lease(self.pool, model_id, self.owner, self.settings.models_lease_seconds):
                    log.warning("lost the lease on %s; another replica may be storing it", model_id)
                    return
            except Exception as exc:  # the database blinked; the lease still has time left
                log.warning("could not renew the lease on %s: %s", model_id, exc)

    async def _copy_all(self, model: Model) -> None:
        await asyncio.to_thread(self.objects.ensure_bucket, self.settings.models_bucket)
        for artifact in model.artifacts:
            staged = await asyncio.to_thread(self.objects.list_staged, artifact.bucket, artifact.prefix)
            for obj in staged:
                path = model_path(artifact.folder, obj.key, artifact.prefix)
                if path in model.verified:  # by an earlier attempt
                    continue
                key = object_key(model.app_id, model.version, path)
                stored = await asyncio.get_running_loop().run_in_executor(  # in this span: the S3 calls too
                    self.executor, contextvars.copy_context().run, self.objects.copy_verified, artifact.bucket,
                    obj.key, self.settings.models_bucket, key, obj.size, self._stop)
                source = f"s3://{artifact.bucket}/{obj.key}"
                await store.record_file(self.pool, model.model_id, path=path, component=artifact.folder,
                                        source=source, object_key=key, stored=stored)
                metrics.STORED_BYTES.inc(stored.size)
                model.file_verified(path, source, stored.size)
                if self.after_file is not None:
                    await self.after_file(model.model_id, path)

    async def _finish(self, model: Model) -> bool:
        """Stored and announced; False when another replica took the model over meanwhile."""
        return await self.bus.handle(commands.MarkModelStored(model.model_id, self.owner)) is not None

    async def _failed(self, model: Model, exc: Exception) -> None:
        metrics.STORE_RETRIES.inc()
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        attempt = model.attempts + 1
        delay = retry_delay(attempt, self.settings.models_retry_base_seconds, self.settings.models_retry_cap_seconds)
        log.warning("storing model %s failed (attempt %d), retrying in %.1fs: %s", model.model_id, attempt,
                    delay, reason)
        try:
            await self.bus.handle(commands.RecordStoreFailure(model.model_id, self.owner, reason, delay))
        except Exception as db_exc:  # the lease expires and the model is retried anyway
            log.warning("could not record the failed attempt on %s: %s", model.model_id, db_exc)
            with contextlib.suppress(Exception):
                await store.release_lease(self.pool, model.model_id, self.owner)

    async def _delete_staged(self, model: Model) -> None:
        """The stored copy is verified and recorded: the staged originals may go (best effort)."""
        if not self.settings.models_delete_staged:
            return
        by_bucket: dict[str, list[str]] = {}
        try:
            for source in model.verified.values():  # every file of the model: _copy_all recorded them all
                bucket, key = split_s3_url(source)
                by_bucket.setdefault(bucket, []).append(key)
            for bucket, keys in by_bucket.items():
                refused = await asyncio.to_thread(self.objects.remove, bucket, keys)
                if refused:
                    log.warning("could not delete staged %s of %s", refused[:10], model.model_id)
        except Exception as exc:  # leftovers in staging cost space, not correctness
            log.warning("could not delete the staged files of %s: %s", model.model_id, exc)
