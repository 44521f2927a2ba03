"""Client spans for PostgreSQL (asyncpg), Redis (redis.asyncio) and S3 (minio), written by hand.

No instrumentation package exists in the pinned dependencies for these clients, so each is a thin
subclass whose I/O methods open a CLIENT span. A span is opened only inside a trace (a span is
current: an HTTP request, an event being handled, a component run, a model being stored); polling
loops outside any trace (the outbox relay, the DLQ watch, the scheduler tick) stay quiet. Names and
attributes follow the OpenTelemetry database conventions (`db.system.name`, `db.operation.name`,
`db.collection.name`, `db.query.text`, `db.namespace`, `server.address`) and, for S3, the HTTP client
conventions plus the `aws.s3.*` attributes. `avatar.workload_id` comes from the bound workload
(services.kit.telemetry.WorkloadAttribute).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
from typing import Any, Callable, Iterator, Mapping

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("avatar.kit.instrument")
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("avatar_instrument_quiet", default=False)
MAX_QUERY_TEXT = 2000


def _active() -> bool:
    # a client span only under a span being recorded: with the (default) parent-based samplers an
    # unsampled request's children are dropped anyway, so they are not even built
    return not _quiet.get() and trace.get_current_span().is_recording()


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No client spans in this block (nor in tasks created in it): chatty background I/O of a traced
    operation, e.g. a run's log lines mirrored to Redis every 0.2 s."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


@contextlib.contextmanager
def _client_span(name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    with _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=dict(attributes),
                                       record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except Exception as exc:
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
            raise


# ------------------------------------------------------------------ PostgreSQL

_TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START\s+TRANSACTION|END)\b", re.I)
_FIRST_WORD = re.compile(r"^\s*(?:--[^\n]*\n\s*)*([A-Za-z]+)")
_TARGETS = {
    "SELECT": re.compile(r"\bFROM\s+([A-Za-z_][\w.]*)", re.I),
    "DELETE": re.compile(r"\bFROM\s+([A-Za-z_][\w.]*)", re.I),
    "INSERT": re.compile(r"\bINTO\s+([A-Za-z_][\w.]*)", re.I),
    "UPDATE": re.compile(r"^\s*UPDATE\s+([A-Za-z_][\w.]*)", re.I),
}
# a statement with CTEs is named by the first thing it changes ("INSERT outbox"), else what it reads
_CTE_WRITE = re.compile(r"\b(INSERT)\s+INTO\s+([A-Za-z_][\w.]*)|\b(UPDATE)\s+([A-Za-z_][\w.]*)(?:\s+(?:AS\s+)?\w+)?\s+SET\b"
                        r"|\b(DELETE)\s+FROM\s+([A-Za-z_][\w.]*)", re.I)
_CTE_READ = re.compile(r"\bFROM\s+([A-Za-z_][\w.]*)", re.I)


def query_summary(query: str) -> tuple[str, str | None]:
    """("SELECT", "outbox") for "SELECT ... FROM outbox ...": the operation and its first table."""
    match = _FIRST_WORD.match(query)
    operation = match.group(1).upper() if match else "QUERY"
    if operation == "WITH":
        write = _CTE_WRITE.search(query)
        if write:
            verb, table = next((write.group(i), write.group(i + 1)) for i in (1, 3, 5) if write.group(i))
            return verb.upper(), table
        read = _CTE_READ.search(query)
        return "SELECT", (read.group(1) if read else None)
    pattern = _TARGETS.get(operation)
    target = pattern.search(query) if pattern else None
    return operation, (target.group(1) if target else None)


# statements whose effect outlives their transaction and that asyncpg's reset query undoes (session
# advisory locks, session settings, LISTEN, cursors): after one, the pool must reset the session.
# Statements go through execute/fetch*; nothing here uses prepare(), cursor() or COPY.
_SESSION_CHANGE = re.compile(
    r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(|\bset_config\s*\("
    r"|^\s*(?:SET(?!\s+LOCAL\b)|RESET|LISTEN|DECLARE)", re.I | re.M)


@functools.lru_cache(maxsize=1024)
def changes_session(query: str) -> bool:
    return bool(_SESSION_CHANGE.search(query))


class TracedConnection(asyncpg.Connection):
    """asyncpg's connection with a CLIENT span per statement (transaction control and the pool's
    reset on release are left out: they are noise, not work).

    It also knows whether anything it ran outlives a transaction: only then does its release to the
    pool send asyncpg's reset query (unlock all, close all, unlisten, reset all), a round trip that
    every release paid before (an open transaction is rolled back on release either way). Temp tables
    and SQL PREPARE are not undone by that query either way; the services use neither.

    And it runs what was asked to happen once the current transaction commits (`after_commit`)."""

    def _span_attributes(self, query: str) -> tuple[str, dict[str, Any]]:
        # the same few dozen statements run all day: describe each once per connection, copy per span
        cache = self.__dict__.setdefault("_avatar_span_cache", {})
        described = cache.get(query)
        if described is None:
            if len(cache) >= 256:  # generated SQL could vary without end; a bound keeps it a cache
                cache.clear()
            described = cache[query] = self._describe(query)
        return described[0], dict(described[1])

    def _describe(self, query: str) -> tuple[str, dict[str, Any]]:
        operation, table = query_summary(query)
        params = getattr(self, "_params", None)
        settings = getattr(params, "server_settings", None) or {}
        database = getattr(params, "database", None) or ""
        schema = (settings.get("search_path") or "").split(",")[0].strip()
        attributes: dict[str, Any] = {
            "db.system.name": "postgresql", "db.operation.name": operation,
            "db.query.text": query[:MAX_QUERY_TEXT],
            "db.namespace": f"{database}|{schema}" if schema else database,
        }
        if table:
            attributes["db.collection.name"] = table
        address = getattr(self, "_addr", None)
        if isinstance(address, tuple) and len(address) >= 2:
            attributes["server.address"], attributes["server.port"] = str(address[0]), int(address[1])
        name = f"{operation} {table}" if table else operation
        attributes["db.query.summary"] = name
        return name, attributes

    @contextlib.contextmanager
    def _traced(self, query: Any, batch: int | None = None) -> Iterator[None]:
        if isinstance(query, str) and changes_session(query):
            self._avatar_session_changed = True
        if not isinstance(query, str) or not _active() or _TRANSACTION_CONTROL.match(query):
            yield
            return
        name, attributes = self._span_attributes(query)
        if batch is not None:
            attributes["db.operation.batch.size"] = batch
        with _client_span(name, attributes) as span:
            try:
                yield
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", None):
                    span.set_attribute("db.response.status_code", exc.sqlstate)
                raise

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        with self._traced(query):
            result = await super().execute(query, *args, **kwargs)
        if not args and self.__dict__.get("_avatar_after_commit") is not None:
            self._transaction_ended(query)
        return result

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once what this connection has just done is committed: when its transaction
        commits (not if it rolls back), or at once outside a transaction (the statement has committed)."""
        if not self.is_in_transaction():
            callback()
            return
        pending = self.__dict__.get("_avatar_after_commit")
        if pending is None:
            pending = self._avatar_after_commit = []
        pending.append(callback)

    def _transaction_ended(self, query: str) -> None:
        # asyncpg's Transaction ends the outermost transaction with these two statements (a savepoint's
        # end does not commit anything); a transaction that never reaches either (a broken connection)
        # is not committed either, and the next one starts afresh
        if query in ("COMMIT;", "ROLLBACK;") or query.startswith("BEGIN") or not self.is_in_transaction():
            callbacks, self._avatar_after_commit = self._avatar_after_commit, None
            if query == "COMMIT;":
                for callback in callbacks:
                    try:
                        callback()
                    except Exception:  # a callback's failure must not look like the commit's
                        log.exception("an after-commit callback failed")

    async def executemany(self, command: str, args: Any, **kwargs: Any) -> None:
        with self._traced(command, batch=len(args) if hasattr(args, "__len__") else None):
            return await super().executemany(command, args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list:
        with self._traced(query):
            return await super().fetch(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        with self._traced(query):
            return await super().fetchval(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        with self._traced(query):
            return await super().fetchrow(query, *args, **kwargs)

    async def fetchmany(self, query: str, args: Any, **kwargs: Any) -> list:
        with self._traced(query):
            return await super().fetchmany(query, args, **kwargs)

    async def add_listener(self, channel: str, callback: Any) -> None:
        self._avatar_session_changed = True
        await super().add_listener(channel, callback)

    def get_reset_query(self) -> str:
        if not self.__dict__.get("_avatar_session_changed"):
            return ""  # nothing this connection ran outlives its transactions
        return super().get_reset_query()

    async def reset(self, *, timeout: float | None = None) -> None:
        token = _quiet.set(True)
        try:
            await super().reset(timeout=timeout)
            self._avatar_session_changed = False  # (the reset query itself looks like a session change)
        finally:
            _quiet.reset(token)


# ------------------------------------------------------------------ Redis

def _redis_traced_client():
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline

    def attributes(client: Any, operation: str) -> dict[str, Any]:
        kwargs = getattr(client.connection_pool, "connection_kwargs", {}) or {}
        found: dict[str, Any] = {"db.system.name": "redis", "db.operation.name": operation,
                                 "db.namespace": str(kwargs.get("db", 0))}
        if kwargs.get("host"):
            found["server.address"] = str(kwargs["host"])
        if kwargs.get("port"):
            found["server.port"] = int(kwargs["port"])
        return found

    def command_name(args: tuple) -> str:
        name = args[0] if args else "COMMAND"
        return (name.decode() if isinstance(name, bytes) else str(name)).upper()

    class TracedPipeline(Pipeline):
        async def execute(self, raise_on_error: bool = True) -> list:
            if not _active() or not self.command_stack:
                return await super().execute(raise_on_error)
            operation = "MULTI" if self.is_transaction else "PIPELINE"
            found = attributes(self, operation)
            found["db.operation.batch.size"] = len(self.command_stack)
            found["db.query.summary"] = operation
            with _client_span(operation, found):
                return await super().execute(raise_on_error)

    class TracedRedis(aioredis.Redis):
        """redis.asyncio.Redis with a CLIENT span per command and per pipeline (a Lua script is its
        EVALSHA/EVAL command, `db.stored_procedure.name` its sha1)."""

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            if not _active():
                return await super().execute_command(*args, **options)
            operation = command_name(args)
            found = attributes(self, operation)
            if operation in ("EVALSHA", "EVAL_RO", "EVALSHA_RO") and len(args) > 1:
                found["db.stored_procedure.name"] = str(args[1])
            with _client_span(operation, found):
                return await super().execute_command(*args, **options)

        def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
            return TracedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    return TracedRedis


_redis_class: Any = None


REDIS_CONNECTIONS = 100  # per client, as redis-py's own default
REDIS_WAIT_SECONDS = 2.0  # for a free connection; past it the command fails as if Redis were away


def redis_pool(url: str, **kwargs: Any) -> Any:
    """A connection pool for the URL where a command waits for a free connection when all are in use,
    instead of failing: redis-py's plain pool fails a burst of more concurrent commands than connections
    with "Too many connections", which callers would take for Redis being away (a 503, or a rate limit
    not enforced)."""
    import redis.asyncio as aioredis

    kwargs.setdefault("max_connections", REDIS_CONNECTIONS)
    kwargs.setdefault("timeout", REDIS_WAIT_SECONDS)
    return aioredis.BlockingConnectionPool.from_url(url, **kwargs)


def redis_from_url(url: str, **kwargs: Any) -> Any:
    """A traced `redis.asyncio.Redis` for the URL (the connection arguments of `redis.asyncio.from_url`)
    on its own `redis_pool`, which it closes when it is closed."""
    global _redis_class
    if _redis_class is None:
        _redis_class = _redis_traced_client()
    return _redis_class.from_pool(redis_pool(url, **kwargs))


# ------------------------------------------------------------------ S3 (minio)

def s3_operation(method: str, bucket: str | None, key: str | None, query: Mapping[str, Any] | None) -> str:
    """The S3 API operation a minio request performs (GetObject, UploadPart, ...)."""
    query = query or {}
    if key:
        if method == "GET":
            return "GetObject"
        if method == "HEAD":
            return "HeadObject"
        if method == "PUT":
            return "UploadPart" if "partNumber" in query else "PutObject"
        if method == "POST":
            return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    elif bucket:
        if method == "GET":
            return "GetBucketLocation" if "location" in query else "ListObjects"
        if method == "HEAD":
            return "HeadBucket"
        if method == "PUT":
            return "CreateBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        if method == "DELETE":
            return "DeleteBucket"
    return "ListBuckets" if method == "GET" and not bucket else method


def _minio_traced_client():
    from minio import Minio

    class TracedMinio(Minio):
        """minio's client with a CLIENT span per HTTP request it makes (its one choke point, `_url_open`).
        A streamed GET's span ends when the response headers arrived, not when the body was read."""

        def _url_open(self, method: str, region: str, bucket_name: str | None = None,
                      object_name: str | None = None, *args: Any, **kwargs: Any) -> Any:
            if not _active():
                return super()._url_open(method, region, bucket_name, object_name, *args, **kwargs)
            query = kwargs.get("query_params") or {}
            operation = s3_operation(method, bucket_name, object_name, query)
            template = "/{bucket}/{key}" if object_name else "/{bucket}" if bucket_name else "/"
            host, _, port = str(getattr(self._base_url, "host", "")).partition(":")
            found: dict[str, Any] = {"http.request.method": method, "url.template": template,
                                     "avatar.s3.operation": operation}
            if host:
                found["server.address"] = host
            if port.isdigit():
                found["server.port"] = int(port)
            if bucket_name:
                found["aws.s3.bucket"] = bucket_name
            if object_name:
                found["aws.s3.key"] = object_name
            if "uploadId" in query:
                found["aws.s3.upload_id"] = str(query["uploadId"])
            if "partNumber" in query:
                found["aws.s3.part_number"] = int(query["partNumber"])
            with _client_span(f"{method} {template}", found) as span:
                response = super()._url_open(method, region, bucket_name, object_name, *args, **kwargs)
                span.set_attribute("http.response.status_code", response.status)
                return response

    return TracedMinio


_minio_class: Any = None


def minio_class() -> Any:
    global _minio_class
    if _minio_class is None:
        _minio_class = _minio_traced_client()
    return _minio_class
